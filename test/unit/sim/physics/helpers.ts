import { GridModel } from '../../../../sim/physics/grid.js';
import { SolarResource } from '../../../../sim/physics/solar.js';

export const MUNICH = { latitudeDeg: 48.14, longitudeDeg: 11.58 };
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
/** Monday 17 June 2024, 00:00 UTC. */
export const MONDAY = Date.UTC(2024, 5, 17);

export function environment(startMs = MONDAY, cloudiness = 0, location = MUNICH) {
  return {
    startMs,
    grid: new GridModel({}, { seed: 1, startMs }),
    solar: new SolarResource(location, { cloudiness }, { seed: 2, startMs }),
    seed: 3,
    utcOffsetMinutes: 0,
  };
}

/** Steps a model from its time to `end` every `stepMs`, calling `each` after every step. */
export function run(
  model: { time: number; step(t: number): void },
  end: number,
  stepMs: number,
  each?: (t: number) => void,
) {
  for (let t = model.time + stepMs; t <= end; t += stepMs) {
    model.step(t);
    each?.(t);
  }
  if (model.time < end) {
    model.step(end);
    each?.(end);
  }
}
