/**
 * Puts a profile's points at the absolute register addresses of one device: SunSpec models sit wherever the
 * device's model chain put them, absolute profiles already carry their addresses.
 */
import type { PlacedPoint } from '../modbus/types.js';
import type { PointDef, Profile } from './types.js';

/** Options of placeProfile. */
export interface PlaceOptions {
  /** Prefix for the keys, joined with a dot: `sunspec-103` gives `sunspec-103.W`. Default: the bare point name. */
  readonly keyPrefix?: string;
}

/**
 * The profile's points at absolute addresses, pads left out. For `sunspec-model` profiles `base` is the address of
 * the model's ID register on the device (address = base + offset); for `absolute` profiles it must be 0.
 * Each point with `sf` gets the absolute address and the definition of its scale-factor point.
 */
export function placeProfile(profile: Profile, base: number, options: PlaceOptions = {}): PlacedPoint[] {
  if (!Number.isInteger(base) || base < 0 || base > 65535) {
    throw new RangeError(`profile ${profile.id}: base ${base} is not a register address (0..65535)`);
  }
  if (profile.addressing === 'absolute' && base !== 0) {
    throw new RangeError(`profile ${profile.id} has absolute addresses; place it with base 0, not ${base}`);
  }
  const offset = profile.addressing === 'sunspec-model' ? base : 0;
  const byName = new Map<string, PointDef>(profile.points.map((point) => [point.name, point]));
  const placed: PlacedPoint[] = [];
  for (const point of profile.points) {
    if (point.type === 'pad') continue;
    const address = offset + point.address;
    if (address + point.size > 65536) {
      throw new RangeError(
        `profile ${profile.id}: point ${point.name} placed at ${address} runs past register 65535 (base ${base})`,
      );
    }
    const key = options.keyPrefix === undefined ? point.name : `${options.keyPrefix}.${point.name}`;
    const sfPoint = point.sf === undefined ? undefined : byName.get(point.sf);
    if (point.sf !== undefined && sfPoint === undefined) {
      throw new RangeError(`profile ${profile.id}: point ${point.name} names sf ${point.sf}, which it does not have`);
    }
    placed.push({
      key,
      profileId: profile.id,
      point,
      address,
      ...(sfPoint === undefined ? {} : { sfAddress: offset + sfPoint.address, sfPoint }),
    });
  }
  return placed;
}

/** The profile's barriers at absolute addresses, for planReads (SunSpec barriers are offsets like the points). */
export function placeBarriers(profile: Profile, base: number): number[] {
  const offset = profile.addressing === 'sunspec-model' ? base : 0;
  return profile.barriers.map((barrier) => offset + barrier);
}
