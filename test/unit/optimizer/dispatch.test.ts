/**
 * Dispatch without hardware: setpoints per device type from one interval of a schedule, the safety clipping
 * (power limits, the reserve guard, the export cap, the EV current window), battery netting, the order of the
 * register writes, release, the deviation events, and the real-time correction by the building's meter (the rule,
 * the split among batteries, deadband, hysteresis and write rate, stale readings). The keeper is a fake that records
 * what would be written; the latest readings are fakes set by each test.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/clock.js';
import { type NewRecord, validateBody } from '../../../agent/ledger/records.js';
import { silentLogger } from '../../../agent/logger.js';
import {
  batteryCorrectionW,
  type DispatchableDevice,
  type DispatchDevice,
  type DispatchDeviceConfig,
  Dispatcher,
  type DispatcherOptions,
  distributeCorrection,
  intervalAt,
  type LatestReadings,
  type PlanContext,
  planBuilding,
  resolveDispatchDevices,
  type SetpointWriter,
  writesFor,
} from '../../../agent/optimizer/dispatch.js';
import type { BuildingSchedule, DerSchedule, SiteSchedule } from '../../../agent/optimizer/schedule.js';
import type { PointValue } from '../../../agent/poll/poller.js';
import type { SetpointTarget } from '../../../agent/poll/setpoints.js';
import type { ModbusBus, PlacedPoint } from '../../../hardware/modbus/types.js';
import type { WriteOutcome } from '../../../hardware/modbus/writer.js';
import { loadCatalogue } from '../../../hardware/profile/load.js';
import { placeProfile } from '../../../hardware/profile/place.js';

const catalogue = loadCatalogue();
const T0 = Date.UTC(2024, 5, 17, 10, 0);
const STEP = 900_000;

const fakeBus: ModbusBus = {
  name: 'fake',
  read: () => Promise.reject(new Error('no bus in unit tests')),
  write: () => Promise.reject(new Error('no bus in unit tests')),
  health: () => ({ state: 'unknown', consecutiveFailures: 0 }),
  close: () => Promise.resolve(),
};

/** A SunSpec chain placed the way discovery places it: models back to back after "SunS". */
function sunspec(...ids: string[]): PlacedPoint[] {
  let address = 40002;
  const points: PlacedPoint[] = [];
  for (const id of ids) {
    const profile = catalogue.get(id);
    points.push(...placeProfile(profile, address));
    address += 2 + (profile.sunspec?.length ?? 0);
  }
  return points;
}

const resolved: DispatchableDevice[] = [
  { name: 'bat', bus: fakeBus, unit: 2, points: sunspec('sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-124') },
  { name: 'bat2', bus: fakeBus, unit: 5, points: sunspec('sunspec-1', 'sunspec-103', 'sunspec-124') },
  { name: 'multi', bus: fakeBus, unit: 227, points: placeProfile(catalogue.get('victron-vebus'), 0) },
  { name: 'inv', bus: fakeBus, unit: 1, points: sunspec('sunspec-1', 'sunspec-103', 'sunspec-120', 'sunspec-123') },
  { name: 'inv2', bus: fakeBus, unit: 6, points: sunspec('sunspec-1', 'sunspec-103', 'sunspec-123') },
  { name: 'wallbox', bus: fakeBus, unit: 3, points: placeProfile(catalogue.get('alfen-eve'), 0) },
];

const configs: DispatchDeviceConfig[] = [
  {
    kind: 'battery',
    building: 'office',
    der: 'battery',
    device: 'bat',
    maxChargeW: 5000,
    maxDischargeW: 4000,
    reservePct: 20,
  },
  { kind: 'pv', building: 'office', der: 'pv', device: 'inv', ratedW: 9000 },
  { kind: 'ev', building: 'office', der: 'car', device: 'wallbox', phases: 3, maxCurrentA: 16 },
];

function devicesFor(list: DispatchDeviceConfig[]): DispatchDevice[] {
  const { devices, problems } = resolveDispatchDevices(list, resolved);
  expect(problems).toEqual([]);
  return devices;
}

function building(ders: DerSchedule[], extra: Partial<BuildingSchedule> = {}): BuildingSchedule {
  const zeros = [0, 0];
  return {
    name: 'office',
    netW: zeros,
    gridImportW: zeros,
    gridExportW: zeros,
    unservedW: zeros,
    ders,
    marginalPrice: zeros,
    cost: { import: 0, export: 0, degradation: 0, trades: 0, curtailment: 0, penalties: 0, total: 0 },
    ...extra,
  };
}

function site(buildings: BuildingSchedule[], status: SiteSchedule['status'] = 'optimal'): SiteSchedule {
  const cost = buildings[0]?.cost ?? building([]).cost;
  return {
    horizon: { start: T0, stepMs: STEP, steps: 2 },
    status,
    buildings,
    netPositionW: [0, 0],
    cost,
    diagnosis: [],
    solveMs: 0,
    mip: false,
  };
}

function context(over: Partial<PlanContext> = {}): PlanContext {
  return {
    now: T0,
    soc: () => ({ pct: 50, t: T0 }),
    socMaxAgeMs: 300_000,
    exportLimitW: undefined,
    ...over,
  };
}

const battery = (powerW: number[], name = 'battery'): DerSchedule => ({ name, kind: 'battery', powerW });
const pv = (powerW: number[], availableW: number[], name = 'pv'): DerSchedule => ({
  name,
  kind: 'pv',
  powerW,
  availableW,
});
const ev = (powerW: number[]): DerSchedule => ({ name: 'car', kind: 'ev', powerW });

function writes(device: DispatchDevice, plan: ReturnType<typeof planBuilding>[number]) {
  return writesFor(device, plan.setpoint).map((w) => [w.control.point.point.name, w.value]);
}

describe('resolveDispatchDevices', () => {
  it('finds each protocol’s controls and the points that measure the response', () => {
    const list: DispatchDeviceConfig[] = [
      ...configs,
      {
        kind: 'battery',
        building: 'office',
        der: 'multi',
        device: 'multi',
        maxChargeW: 3000,
        maxDischargeW: 3000,
        reservePct: 30,
      },
    ];
    const [bat, inv, box, multi] = devicesFor(list);
    expect(bat?.controls.protocol).toBe('sunspec-124');
    if (bat?.controls.protocol === 'sunspec-124') {
      // The rates revert on their own; the mode has no timer and is renewed on the keeper's refresh period.
      expect(bat.controls.inRate.revertTimeout?.point.name).toBe('InOutWRte_RvrtTms');
      expect(bat.controls.mode.revertTimeout).toBeUndefined();
    }
    expect(bat?.measured).toEqual({ power: ['W'], sign: 1, soc: 'ChaState' });
    expect(inv?.controls.protocol).toBe('sunspec-123');
    if (inv?.controls.protocol === 'sunspec-123') expect(inv.controls.limit.enable?.point.name).toBe('WMaxLim_Ena');
    expect(box?.controls.protocol).toBe('ev-current');
    // MaxCurrentValidTime is read-only (time remaining): it must not be written as a revert timeout.
    if (box?.controls.protocol === 'ev-current') expect(box.controls.current.revertTimeout).toBeUndefined();
    expect(box?.measured.power).toEqual(['W']);
    expect(multi?.controls.protocol).toBe('victron-ess');
    expect(multi?.measured).toEqual({ power: ['AcInWphA', 'AcInWphB', 'AcInWphC'], sign: -1, soc: 'Soc' });
  });

  it('leaves out what cannot be dispatched, saying why', () => {
    const { devices, problems } = resolveDispatchDevices(
      [
        { kind: 'pv', building: 'office', der: 'roof', device: 'bat', ratedW: 5000 },
        {
          kind: 'battery',
          building: 'office',
          der: 'b',
          device: 'inv',
          maxChargeW: 1,
          maxDischargeW: 1,
          reservePct: 10,
        },
        { kind: 'ev', building: 'office', der: 'car', device: 'gone', phases: 3, maxCurrentA: 16 },
        { kind: 'ev', building: 'office', der: 'car2', device: 'wallbox', phases: 3, maxCurrentA: 4 },
        { kind: 'pv', building: 'office', der: 'pv', device: 'inv', ratedW: 9000, minLimitPct: 0 },
        { kind: 'pv', building: 'office', der: 'pv2', device: 'inv2', ratedW: 9000 },
        { kind: 'pv', building: 'office', der: 'pv3', device: 'inv2', ratedW: 9000 },
      ],
      resolved,
    );
    expect(devices.map((d) => d.config.der)).toEqual(['pv2']);
    const messages = problems.map((p) => p.message);
    expect(messages[0]).toMatch(/DER 'roof' .*device 'bat'.*no SunSpec 123 WMaxLimPct/);
    expect(messages[1]).toMatch(/device 'inv'.*neither SunSpec 124 storage controls.*nor Victron ESS/);
    expect(messages[2]).toMatch(/device 'gone' is not among the resolved devices/);
    expect(messages[3]).toMatch(/maxCurrentA \(4\) must be at least minCurrentA \(6\)/);
    expect(messages[4]).toMatch(/minLimitPct must be above 0.*a 0 % limit is never written/);
    expect(messages[5]).toMatch(/device 'inv2' already carries DER 'pv2'/);
  });
});

describe('battery setpoints', () => {
  const [bat] = devicesFor([configs[0] as DispatchDeviceConfig]);
  const device = bat as DispatchDevice;

  it('charges with InWRte 100 and a negative OutWRte, relaxing side first and the mode last', () => {
    const [plan] = planBuilding(building([battery([-3000, 0])]), 0, [device], context());
    expect(plan?.setpoint).toEqual({ kind: 'battery', powerW: -3000 });
    expect(plan?.clipped).toEqual([]);
    // -3000 W of a 4000 W discharge maximum: OutWRte -75 % forces charging at 3000 W.
    expect(writes(device, plan!)).toEqual([
      ['InWRte', 100],
      ['OutWRte', -75],
      ['StorCtl_Mod', 3],
    ]);
  });

  it('discharges with OutWRte 100 and a negative InWRte', () => {
    const [plan] = planBuilding(building([battery([0, 2000])]), 1, [device], context());
    expect(writes(device, plan!)).toEqual([
      ['OutWRte', 100],
      ['InWRte', -40],
      ['StorCtl_Mod', 3],
    ]);
  });

  it('idles with both rates at 0', () => {
    const [plan] = planBuilding(building([battery([0, 0])]), 0, [device], context());
    expect(writes(device, plan!)).toEqual([
      ['OutWRte', 0],
      ['InWRte', 0],
      ['StorCtl_Mod', 3],
    ]);
  });

  it('clips to the device power limits', () => {
    const [up] = planBuilding(building([battery([6000, -9000])]), 0, [device], context());
    expect(up?.setpoint).toEqual({ kind: 'battery', powerW: 4000 });
    expect(up?.clipped).toEqual(['power-limit']);
    // SunSpec 124 forces charging through OutWRte, a percentage of the 4000 W discharge maximum: -100 % at most.
    const [down] = planBuilding(building([battery([6000, -9000])]), 1, [device], context());
    expect(down?.setpoint).toEqual({ kind: 'battery', powerW: -4000 });
    expect(writes(device, down!)).toEqual([
      ['InWRte', 100],
      ['OutWRte', -100],
      ['StorCtl_Mod', 3],
    ]);
    const [multi] = devicesFor([
      {
        kind: 'battery',
        building: 'office',
        der: 'battery',
        device: 'multi',
        maxChargeW: 5000,
        maxDischargeW: 4000,
        reservePct: 20,
      },
    ]);
    const [victron] = planBuilding(building([battery([6000, -9000])]), 1, [multi!], context());
    expect(victron?.setpoint).toEqual({ kind: 'battery', powerW: -5000 });
  });

  it('never discharges at or below the reserve, nor on an unknown or stale SoC; charging stays allowed', () => {
    const at = (pct: number, t = T0) => context({ soc: () => ({ pct, t }) });
    const plan = (ctx: PlanContext, w = 2000) => planBuilding(building([battery([w, w])]), 0, [device], ctx)[0];
    expect(plan(at(20))?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(plan(at(20))?.clipped).toEqual(['reserve']);
    expect(plan(at(20.1))?.setpoint).toEqual({ kind: 'battery', powerW: 2000 });
    expect(plan(context({ soc: () => undefined }))?.clipped).toEqual(['soc-unknown']);
    expect(plan(at(80, T0 - 300_001))?.clipped).toEqual(['soc-unknown']);
    expect(plan(at(80, T0 - 300_000))?.clipped).toEqual([]);
    expect(plan(at(5), -2000)?.setpoint).toEqual({ kind: 'battery', powerW: -2000 });
    expect(plan(at(5), Number.NaN)?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(plan(at(5), Number.NaN)?.clipped).toEqual(['invalid']);
  });

  it('nets a building’s batteries so none charges while another discharges, keeping the net', () => {
    const both = devicesFor([
      configs[0] as DispatchDeviceConfig,
      {
        kind: 'battery',
        building: 'office',
        der: 'second',
        device: 'bat2',
        maxChargeW: 5000,
        maxDischargeW: 5000,
        reservePct: 10,
      },
    ]);
    const plans = planBuilding(building([battery([3000, 0]), battery([-1000, 0], 'second')]), 0, both, context());
    expect(plans.map((p) => p.setpoint)).toEqual([
      { kind: 'battery', powerW: 2000 },
      { kind: 'battery', powerW: 0 },
    ]);
    expect(plans.map((p) => p.clipped)).toEqual([['netted'], ['netted']]);
    // Netting comes after the reserve guard: a blocked discharge does not cancel the other battery's charge.
    const guarded = planBuilding(
      building([battery([3000, 0]), battery([-1000, 0], 'second')]),
      0,
      both,
      context({ soc: (d) => ({ pct: d.config.der === 'battery' ? 15 : 50, t: T0 }) }),
    );
    expect(guarded.map((p) => p.setpoint)).toEqual([
      { kind: 'battery', powerW: 0 },
      { kind: 'battery', powerW: -1000 },
    ]);
  });

  it('writes a Victron ESS setpoint with the opposite sign, split over its phases with an exact sum', () => {
    const [three, one] = devicesFor([
      {
        kind: 'battery',
        building: 'office',
        der: 'multi',
        device: 'multi',
        maxChargeW: 3000,
        maxDischargeW: 3000,
        reservePct: 30,
      },
      {
        kind: 'battery',
        building: 'office',
        der: 'battery',
        device: 'bat',
        maxChargeW: 3000,
        maxDischargeW: 3000,
        reservePct: 30,
      },
    ]);
    const plans = planBuilding(
      building([{ name: 'multi', kind: 'battery', powerW: [-1000, 1400] }]),
      0,
      [three!],
      context(),
    );
    expect(writes(three!, plans[0]!)).toEqual([
      ['EssWphA', 334],
      ['EssWphB', 333],
      ['EssWphC', 333],
    ]);
    const single = { ...three!, config: { ...(three!.config as DispatchDeviceConfig), phases: 1 } } as DispatchDevice;
    const [discharge] = planBuilding(
      building([{ name: 'multi', kind: 'battery', powerW: [-1000, 1400] }]),
      1,
      [single],
      context(),
    );
    expect(writes(single, discharge!)).toEqual([
      ['EssWphA', -1400],
      ['EssWphB', 0],
      ['EssWphC', 0],
    ]);
    expect(one?.controls.protocol).toBe('sunspec-124');
  });
});

describe('PV setpoints', () => {
  const [inv] = devicesFor([configs[1] as DispatchDeviceConfig]);
  const device = inv as DispatchDevice;

  it('writes a limit only when the plan is below the forecast, truncated to 0.1 %', () => {
    const [curtailed] = planBuilding(building([pv([4000, 6000], [6000, 6000])]), 0, [device], context());
    expect(curtailed?.setpoint).toEqual({ kind: 'pv', limitW: 3996, limitPct: 44.4 });
    expect(writes(device, curtailed!)).toEqual([['WMaxLimPct', 44.4]]);
    const [free] = planBuilding(building([pv([4000, 6000], [6000, 6000])]), 1, [device], context());
    expect(free?.setpoint).toEqual({ kind: 'pv', limitW: null, limitPct: 100 });
    expect(writes(device, free!)).toEqual([['WMaxLimPct', 100]]);
  });

  it('never writes 0 %: the floor is 1 % of the rating', () => {
    const [zero] = planBuilding(building([pv([0, 0], [5000, 5000])]), 0, [device], context());
    expect(zero?.setpoint).toEqual({ kind: 'pv', limitW: 90, limitPct: 1 });
    expect(zero?.clipped).toEqual(['min-limit']);
  });

  it('caps the PV at the plan plus the export headroom the plan leaves, shared by rating', () => {
    const b = building([pv([5000, 5000], [5000, 5000])], { gridExportW: [1500, 0] });
    const [capped] = planBuilding(b, 0, [device], context({ exportLimitW: 2000 }));
    // 5000 W planned + (2000 - 1500) W headroom = 5500 W of 9000 W.
    expect(capped?.setpoint).toEqual({ kind: 'pv', limitW: 5499, limitPct: 61.1 });
    expect(capped?.clipped).toEqual(['export-limit']);
    const [roomy] = planBuilding(b, 0, [device], context({ exportLimitW: 10_000 }));
    expect(roomy?.setpoint).toEqual({ kind: 'pv', limitW: null, limitPct: 100 });

    const [big, small] = devicesFor([
      configs[1] as DispatchDeviceConfig,
      { kind: 'pv', building: 'office', der: 'pv2', device: 'inv2', ratedW: 3000 },
    ]);
    const two = building([pv([3000, 0], [3000, 0]), pv([1000, 0], [1000, 0], 'pv2')], { gridExportW: [0, 0] });
    const plans = planBuilding(two, 0, [big!, small!], context({ exportLimitW: 1200 }));
    // 1200 W headroom: 900 W to the 9 kW inverter, 300 W to the 3 kW one.
    expect(plans.map((p) => p.setpoint)).toEqual([
      { kind: 'pv', limitW: 3897, limitPct: 43.3 },
      { kind: 'pv', limitW: 1299, limitPct: 43.3 },
    ]);
  });
});

describe('EV setpoints', () => {
  const [box] = devicesFor([configs[2] as DispatchDeviceConfig]);
  const device = box as DispatchDevice;
  const plan = (w: number) => planBuilding(building([ev([w, 0])]), 0, [device], context())[0];

  it('converts W to A per phase at 230 V, truncated to 0.1 A', () => {
    // 8000 W / (3 x 230 V) = 11.59 A.
    expect(plan(8000)?.setpoint).toEqual({ kind: 'ev', currentA: 11.5, powerW: 7935 });
    expect(writes(device, plan(8000)!)).toEqual([['MaxCurrent', 11.5]]);
    expect(plan(0)?.setpoint).toEqual({ kind: 'ev', currentA: 0, powerW: 0 });
  });

  it('keeps the current in [6 A, max] or 0', () => {
    expect(plan(20_000)?.setpoint).toEqual({ kind: 'ev', currentA: 16, powerW: 11_040 });
    expect(plan(20_000)?.clipped).toEqual(['max-current']);
    // 2100 W is 3.04 A: nearer 6 A than 0.
    expect(plan(2100)?.setpoint).toEqual({ kind: 'ev', currentA: 6, powerW: 4140 });
    expect(plan(2100)?.clipped).toEqual(['min-current']);
    expect(plan(2000)?.setpoint).toEqual({ kind: 'ev', currentA: 0, powerW: 0 });
    expect(plan(2000)?.clipped).toEqual(['below-min-current']);
    expect(plan(Number.NaN)?.clipped).toEqual(['invalid']);
  });
});

describe('intervalAt', () => {
  it('finds the interval containing now, none before or after the horizon', () => {
    const h = { start: T0, stepMs: STEP, steps: 2 };
    expect(intervalAt(h, T0 - 1)).toBeUndefined();
    expect(intervalAt(h, T0)).toBe(0);
    expect(intervalAt(h, T0 + STEP - 1)).toBe(0);
    expect(intervalAt(h, T0 + STEP)).toBe(1);
    expect(intervalAt(h, T0 + 2 * STEP)).toBeUndefined();
  });
});

/** Records every keeper call; answers with `answer` (ok read-back by default). */
class FakeKeeper implements SetpointWriter {
  readonly calls: string[] = [];
  readonly released: string[] = [];
  answer: (target: SetpointTarget, value: number) => WriteOutcome | undefined = (_t, value) => ({
    ok: true,
    requested: value,
    words: [],
    readBack: value,
  });

  set(target: SetpointTarget, value: number): Promise<WriteOutcome | undefined> {
    this.calls.push(`${target.device}.${target.control.point.key}=${value}`);
    return Promise.resolve(this.answer(target, value));
  }

  release(device: string, pointKey: string): void {
    this.released.push(`${device}.${pointKey}`);
  }
}

function readings(values: Record<string, Record<string, number>>, t: number): LatestReadings {
  return (device) => {
    const points = values[device];
    if (points === undefined) throw new Error(`poller: no device named '${device}'`);
    return new Map<string, PointValue>(Object.entries(points).map(([k, v]) => [k, { value: v, unit: 'W', t }]));
  };
}

describe('Dispatcher', () => {
  function setup(latest?: LatestReadings) {
    const keeper = new FakeKeeper();
    const events: NewRecord[] = [];
    const clock = new ManualClock(T0);
    const dispatcher = new Dispatcher({
      keeper,
      devices: devicesFor(configs),
      sink: { append: (records) => events.push(...records) },
      clock,
      logger: silentLogger(),
      limits: { exportLimitW: { office: 20_000 } },
      ...(latest ? { latest } : {}),
    });
    return { keeper, events, clock, dispatcher };
  }

  const schedule = site([
    building([battery([-3000, 2000]), pv([4000, 6000], [6000, 6000]), ev([4140, 0])], { gridExportW: [0, 0] }),
  ]);

  it('writes every DER of the interval in force through the keeper and reports the read-back', async () => {
    let soc = 50;
    let t = T0;
    const { keeper, dispatcher } = setup((device) =>
      readings({ bat: { ChaState: soc, W: 0 }, inv: { W: 0 }, wallbox: { W: 0 } }, t)(device),
    );
    const outcomes = await dispatcher.apply(schedule, T0 + 10);
    expect(outcomes.map((o) => [o.der, o.status, o.step])).toEqual([
      ['battery', 'ok', 0],
      ['pv', 'ok', 0],
      ['car', 'ok', 0],
    ]);
    expect(keeper.calls).toEqual([
      'bat.InWRte=100',
      'inv.WMaxLimPct=44.4',
      'wallbox.MaxCurrent=6',
      'bat.OutWRte=-75',
      'bat.StorCtl_Mod=3',
    ]);
    expect(outcomes[0]?.writes.map((w) => w.status)).toEqual(['ok', 'ok', 'ok']);

    // The next interval: discharge, unless the measured SoC is at the reserve.
    soc = 20;
    t = T0 + STEP;
    keeper.calls.length = 0;
    const next = await dispatcher.apply(schedule, T0 + STEP);
    expect(next[0]?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(next[0]?.clipped).toEqual(['reserve']);
    expect(next[1]?.setpoint).toEqual({ kind: 'pv', limitW: null, limitPct: 100 });
    expect(next[2]?.setpoint).toEqual({ kind: 'ev', currentA: 0, powerW: 0 });
  });

  it('without measurements no battery is discharged', async () => {
    const { dispatcher } = setup();
    const [bat] = await dispatcher.apply(schedule, T0 + STEP);
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(bat?.clipped).toEqual(['soc-unknown']);
  });

  it('reports writes the device did not take, or that failed', async () => {
    const { keeper, dispatcher } = setup();
    keeper.answer = (target, value) =>
      target.device === 'inv'
        ? { ok: false, requested: value, words: [], readBack: 100, problem: 'the device reports 100 %' }
        : target.device === 'wallbox'
          ? undefined
          : { ok: true, requested: value, words: [], readBack: value };
    const outcomes = await dispatcher.apply(schedule, T0);
    expect(outcomes.map((o) => o.status)).toEqual(['ok', 'mismatch', 'failed']);
    expect(outcomes[1]?.writes[0]).toMatchObject({
      status: 'mismatch',
      readBack: 100,
      problem: 'the device reports 100 %',
    });
  });

  it('hands DERs back when no interval is in force or the schedule leaves them out, once', async () => {
    const { keeper, dispatcher } = setup();
    await dispatcher.apply(schedule, T0);
    keeper.calls.length = 0;
    // A fallback schedule without the EV: the charger goes back to its own control.
    const fallback = site([building([battery([0, 0]), pv([6000, 6000], [6000, 6000])])], 'fallback');
    const outcomes = await dispatcher.apply(fallback, T0 + 1);
    expect(outcomes.map((o) => [o.der, o.status])).toEqual([
      ['battery', 'ok'],
      ['pv', 'ok'],
      ['car', 'released'],
    ]);
    expect(keeper.released).toEqual(['wallbox.MaxCurrent']);
    keeper.calls.length = 0;
    // Past the horizon: the battery's mode goes to 0 and the PV to 100 % at once, then nothing is renewed.
    const after = await dispatcher.apply(schedule, T0 + 2 * STEP);
    expect(after.map((o) => [o.der, o.status])).toEqual([
      ['battery', 'released'],
      ['pv', 'released'],
    ]);
    expect(keeper.calls).toEqual(['bat.StorCtl_Mod=0', 'inv.WMaxLimPct=100']);
    expect(keeper.released).toEqual([
      'wallbox.MaxCurrent',
      'bat.InWRte',
      'bat.OutWRte',
      'bat.StorCtl_Mod',
      'inv.WMaxLimPct',
    ]);
    expect(await dispatcher.apply(schedule, T0 + 3 * STEP)).toEqual([]);
  });

  it('does not dispatch a DER whose kind in the schedule differs from its config', async () => {
    const { keeper, dispatcher } = setup();
    const wrong = site([building([{ name: 'battery', kind: 'pv', powerW: [0, 0], availableW: [0, 0] }])]);
    expect(await dispatcher.apply(wrong, T0)).toEqual([]);
    expect(keeper.calls).toEqual([]);
  });

  it('records a deviation event when the mean response of a finished interval is off by more than the tolerance', async () => {
    let now = T0;
    const measured = { bat: { ChaState: 60, W: -3000 }, inv: { W: 3000 }, wallbox: { W: 4100 } };
    const { events, dispatcher } = setup((device) => readings(measured, now)(device));
    await dispatcher.apply(schedule, T0);
    // Readings every minute: the battery charges at 2000 W instead of 3000 W for most of the interval.
    for (let m = 1; m < 15; m++) {
      now = T0 + m * 60_000;
      measured.bat.W = m < 3 ? -3000 : -2000;
      measured.inv.W = 3000;
      dispatcher.sample(now);
      dispatcher.sample(now); // the same reading twice counts once
    }
    expect(dispatcher.recordDeviations(T0 + STEP - 1)).toEqual([]);
    const reports = dispatcher.recordDeviations(T0 + STEP);
    // Mean of 2 x -3000 and 12 x -2000 = -2143 W against -3000 W; tolerance max(5 % of 5000 W, 200 W) = 250 W.
    expect(
      reports.map((r) => [r.der, r.setpointW, r.measuredW, r.deviationW, r.toleranceW, r.samples, r.exceeded]),
    ).toEqual([
      ['battery', -3000, -2143, 857, 250, 14, true],
      ['pv', 3996, 3000, -996, 450, 14, false],
      ['car', 4140, 4100, -40, 552, 14, false],
    ]);
    expect(events).toHaveLength(1);
    const body = events[0]?.body as Record<string, unknown>;
    validateBody('event', body);
    expect(body).toMatchObject({
      source: 'bat',
      kind: 'dispatch-deviation',
      building: 'office',
      der: 'battery',
      interval: T0,
      stepMs: STEP,
      setpointW: -3000,
      measuredW: -2143,
      deviationW: 857,
      toleranceW: 250,
      samples: 14,
    });
    expect(String(body.message)).toMatch(
      /DER 'battery' \(device 'bat'\).*set to -3000 W but measured -2143 W.*857 W above/,
    );
    // Finished intervals are reported once.
    expect(dispatcher.recordDeviations(T0 + STEP + 1)).toEqual([]);
  });

  it('records a PV or EV deviation only above its limit', async () => {
    let now = T0;
    const measured = { bat: { ChaState: 60, W: -3000 }, inv: { W: 4600 }, wallbox: { W: 0 } };
    const { events, dispatcher } = setup((device) => readings(measured, now)(device));
    await dispatcher.apply(schedule, T0);
    now = T0 + 60_000;
    dispatcher.sample(now);
    const reports = dispatcher.recordDeviations(T0 + STEP);
    expect(reports.filter((r) => r.exceeded).map((r) => [r.der, r.deviationW])).toEqual([['pv', 604]]);
    expect(events.map((e) => e.body.der)).toEqual(['pv']);
    expect(String(events[0]?.body.message)).toMatch(/limited to 3996 W but measured 4600 W/);
  });
});

describe('batteryCorrectionW', () => {
  const at = (over: Partial<Parameters<typeof batteryCorrectionW>[0]>) =>
    batteryCorrectionW({ plannedNetW: 0, deviationW: 0, plannedBatteryW: 0, baseW: 0, deadbandW: 200, ...over });

  it('charges export beyond the planned export', () => {
    // The plan exports 1000 W; a sunnier sky makes it 4000 W: the 3000 W beyond go into the battery.
    expect(at({ plannedNetW: -1000, deviationW: -3000 })).toBe(-3000);
    // Planned import, and the surplus turns it into export: only the export part is charged.
    expect(at({ plannedNetW: 2000, deviationW: -3000 })).toBe(-1000);
    // Also when the plan discharges: that discharge is reduced first (distributeCorrection), the sign is the same.
    expect(at({ plannedNetW: 0, deviationW: -1500, plannedBatteryW: 2000, baseW: 2000 })).toBe(-1500);
  });

  it('leaves a deviation inside the band between 0 and the planned exchange to the grid', () => {
    // Less import than planned: it is bought at the price the plan pays anyway; charging it would be a purchase.
    expect(at({ plannedNetW: 2000, deviationW: -1500 })).toBe(0);
    // Less export than planned: it is sold at the feed-in the plan accepts; charging less would lose stored value.
    expect(at({ plannedNetW: -3000, deviationW: 2000, plannedBatteryW: -2000, baseW: -2000 })).toBe(0);
  });

  it('charges less when the plan charges and import beyond the planned import would pay for it, never below idle', () => {
    expect(at({ plannedNetW: 1000, deviationW: 1500, plannedBatteryW: -2000, baseW: -2000 })).toBe(1500);
    expect(at({ plannedNetW: 1000, deviationW: 3000, plannedBatteryW: -2000, baseW: -2000 })).toBe(2000);
    expect(at({ plannedNetW: -500, deviationW: 1500, plannedBatteryW: -2000, baseW: -2000 })).toBe(1000);
  });

  it('never discharges beyond the plan', () => {
    expect(at({ plannedNetW: 0, deviationW: 1500, plannedBatteryW: 2000, baseW: 2000 })).toBe(0);
    expect(at({ plannedNetW: 500, deviationW: 3000 })).toBe(0);
    // The reserve guard held back a planned discharge (base 0): the missing discharge is not made up.
    expect(at({ plannedNetW: 0, deviationW: 0, plannedBatteryW: 3000, baseW: 0 })).toBe(0);
  });

  it('ignores excursions within the deadband, and ends a running correction only below half of it', () => {
    expect(at({ plannedNetW: -1000, deviationW: -150 })).toBe(0);
    expect(at({ plannedNetW: -1000, deviationW: -250 })).toBe(-250);
    expect(at({ plannedNetW: -1000, deviationW: -150, correcting: true })).toBe(-150);
    expect(at({ plannedNetW: -1000, deviationW: -90, correcting: true })).toBe(0);
  });

  it('does nothing on numbers that are not numbers', () => {
    expect(at({ plannedNetW: Number.NaN, deviationW: -3000 })).toBe(0);
    expect(at({ deviationW: Number.POSITIVE_INFINITY })).toBe(0);
  });
});

describe('distributeCorrection', () => {
  const b = (baseW: number, chargeMaxW = 5000, full = false) => ({ baseW, chargeMaxW, full });

  it('takes charging off the charging batteries in proportion', () => {
    expect(distributeCorrection([b(-1000), b(-3000), b(0)], 2000)).toEqual({ w: [-500, -1500, 0], placedW: 2000 });
  });

  it('adds charge first by taking discharge off, then by headroom, so none discharges while another charges', () => {
    const { w, placedW } = distributeCorrection([b(2000), b(0)], -3000);
    expect(w).toEqual([-500, -500]);
    expect(placedW).toBe(-3000);
    // Less than the discharge: only the discharging battery moves.
    expect(distributeCorrection([b(2000), b(0)], -1000)).toEqual({ w: [1000, 0], placedW: -1000 });
    // Headroom: what a battery can still take.
    expect(distributeCorrection([b(-4000), b(0, 3000)], -2000)).toEqual({ w: [-4500, -1500], placedW: -2000 });
  });

  it('gives a full battery no extra charge and places no more than the headroom', () => {
    expect(distributeCorrection([b(0, 5000, true), b(-1000, 4000)], -6000)).toEqual({ w: [0, -4000], placedW: -3000 });
  });
});

describe('Dispatcher: real-time correction', () => {
  /** Meter (+ import) and battery readings the test moves; each reading is taken "now" unless `t` is set. */
  interface Site {
    meterW: number;
    bat: number;
    bat2: number;
    soc: number;
    soc2: number;
    t: number | undefined;
    meterT: number | undefined;
  }

  function setup(options: { two?: boolean; extra?: Partial<DispatcherOptions>; socMaxPct?: number } = {}) {
    const keeper = new FakeKeeper();
    const events: NewRecord[] = [];
    const clock = new ManualClock(T0);
    const site: Site = { meterW: 0, bat: 0, bat2: 0, soc: 50, soc2: 50, t: undefined, meterT: undefined };
    const list: DispatchDeviceConfig[] = [
      { ...(configs[0] as DispatchDeviceConfig & { kind: 'battery' }), socMaxPct: options.socMaxPct ?? 95 },
    ];
    if (options.two === true) {
      list.push({
        kind: 'battery',
        building: 'office',
        der: 'second',
        device: 'bat2',
        maxChargeW: 2000,
        maxDischargeW: 2000,
        reservePct: 10,
      });
    }
    const latest: LatestReadings = (device) => {
      const t = site.t ?? clock.now();
      const values: Record<string, Record<string, number>> = {
        bat: { ChaState: site.soc, W: site.bat },
        bat2: { ChaState: site.soc2, W: site.bat2 },
        meter: { W: site.meterW },
      };
      const points = values[device];
      if (points === undefined) throw new Error(`poller: no device named '${device}'`);
      const at = device === 'meter' ? (site.meterT ?? t) : t;
      return new Map<string, PointValue>(Object.entries(points).map(([k, v]) => [k, { value: v, unit: 'W', t: at }]));
    };
    const dispatcher = new Dispatcher({
      keeper,
      devices: devicesFor(list),
      sink: { append: (records) => events.push(...records) },
      clock,
      logger: silentLogger(),
      latest,
      buildings: { office: { device: 'meter', point: 'W' } },
      ...options.extra,
    });
    return { keeper, events, clock, site, dispatcher };
  }

  const plan = (batteryW: number[], netW: number[], second?: number[]) =>
    site([
      building([battery(batteryW), ...(second ? [battery(second, 'second')] : [])], {
        netW,
        gridImportW: netW.map((w) => Math.max(0, w)),
        gridExportW: netW.map((w) => Math.max(0, -w)),
      }),
    ]);

  it('charges an unplanned PV surplus into the battery at once, and the deviation events compare with it', async () => {
    const { keeper, events, clock, site: s, dispatcher } = setup();
    // The plan: battery idle, 1000 W export. The meter shows 4000 W export: 3000 W more sun than forecast.
    s.meterW = -4000;
    const [bat] = await dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: -3000 });
    expect(bat?.correctionW).toBe(-3000);
    expect(bat?.plannedW).toBe(0);
    // 124 charging at 3000 W: OutWRte -3000/4000 (maxDischargeW).
    expect(keeper.calls).toEqual(['bat.InWRte=100', 'bat.OutWRte=-75', 'bat.StorCtl_Mod=3']);
    expect(dispatcher.corrections()).toEqual([
      expect.objectContaining({
        building: 'office',
        interval: T0,
        plannedNetW: -1000,
        measuredNetW: -4000,
        deviationW: -3000,
        correctionW: -3000,
        requestedW: -3000,
        setpoints: [{ der: 'battery', device: 'bat', powerW: -3000 }],
      }),
    ]);
    // The battery follows: the meter is back at the planned export, the deviation (battery excluded) unchanged.
    for (let m = 1; m < 15; m++) {
      clock.advance(T0 + m * 60_000 - clock.now());
      s.bat = -3000;
      s.meterW = -1000;
      expect(await dispatcher.sample()).toEqual([]);
    }
    expect(keeper.calls).toHaveLength(3);
    const reports = dispatcher.recordDeviations(T0 + STEP);
    expect(reports.map((r) => [r.der, r.setpointW, r.measuredW, r.exceeded])).toEqual([
      ['battery', -3000, -3000, false],
    ]);
    expect(events).toEqual([]);
  });

  it('corrects after a poll cycle, no more often than the minimum write interval, and goes back to plan', async () => {
    const { keeper, clock, site: s, dispatcher } = setup();
    s.meterW = -1000;
    const [bat] = await dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(bat?.correctionW).toBe(0);
    keeper.calls.length = 0;
    // A cloud moves off 5 s later: 2500 W more export. Too soon after the last write.
    clock.advance(T0 + 5000 - clock.now());
    s.meterW = -3500;
    expect(await dispatcher.sample()).toEqual([]);
    clock.advance(T0 + 10_000 - clock.now());
    const [report] = await dispatcher.sample();
    expect(report).toMatchObject({ deviationW: -2500, correctionW: -2500 });
    expect(report?.outcomes.map((o) => [o.der, o.setpoint, o.correctionW, o.status])).toEqual([
      ['battery', { kind: 'battery', powerW: -2500 }, -2500, 'ok'],
    ]);
    expect(keeper.calls).toEqual(['bat.InWRte=100', 'bat.OutWRte=-62.5', 'bat.StorCtl_Mod=3']);
    // Beyond what the battery can take (4000 W as SunSpec 124 forces it): clipped at the power limit.
    s.bat = -2500;
    s.meterW = -3000;
    clock.advance(T0 + 20_000 - clock.now());
    const [more] = await dispatcher.sample();
    expect(more).toMatchObject({ deviationW: -4500, requestedW: -4500, correctionW: -4000 });
    expect(more?.outcomes[0]?.clipped).toEqual(['power-limit']);
    // Small moves (up to half the deadband) are not written: 3950 W asked, 4000 W in force.
    s.bat = -4000;
    s.meterW = -950;
    clock.advance(T0 + 30_000 - clock.now());
    expect(await dispatcher.sample()).toEqual([]);
    // The cloud is back: the deviation is gone, the battery goes back to the plan.
    s.meterW = 2950;
    clock.advance(T0 + 40_000 - clock.now());
    const [back] = await dispatcher.sample();
    expect(back).toMatchObject({ deviationW: -50, correctionW: 0 });
    expect(back?.outcomes.map((o) => o.setpoint)).toEqual([{ kind: 'battery', powerW: 0 }]);
  });

  it('charges less when the plan charges from a sun that does not come, never discharges beyond the plan', async () => {
    const { clock, site: s, dispatcher } = setup();
    // Plan: charge 3000 W from PV with no exchange. The meter shows 2000 W import while the battery charges 3000 W.
    s.bat = -3000;
    s.meterW = 2000;
    const [bat] = await dispatcher.apply(plan([-3000, 2000], [0, 0]));
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: -1000 });
    expect(bat?.correctionW).toBe(2000);
    // Interval 1: the plan discharges 2000 W to cover the load; the load is 1500 W higher. Imported, not discharged.
    clock.advance(T0 + STEP - clock.now());
    s.bat = 2000;
    s.meterW = 1500;
    const [next] = await dispatcher.apply(plan([-3000, 2000], [0, 0]));
    expect(next?.setpoint).toEqual({ kind: 'battery', powerW: 2000 });
    expect(next?.correctionW).toBe(0);
    expect(dispatcher.corrections()[0]).toMatchObject({ deviationW: 1500, correctionW: 0, requestedW: 0 });
  });

  it('makes no correction on stale or missing readings, and says why', async () => {
    const { site: s, dispatcher } = setup();
    s.meterW = -4000;
    s.meterT = T0 - 31_000;
    const [bat] = await dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(dispatcher.corrections()[0]?.problem).toMatch(/building 'office': the reading of meter 'meter' is 31 s old/);
    const noMeter = setup({ extra: { buildings: { office: { device: 'gone', point: 'W' } } } });
    noMeter.site.meterW = -4000;
    await noMeter.dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(noMeter.dispatcher.corrections()[0]?.problem).toMatch(/no reading of meter 'gone' point 'W'/);
    // A building without a meter is dispatched as planned, with no correction state.
    const plain = setup({ extra: { buildings: {} } });
    plain.site.meterW = -4000;
    const [p] = await plain.dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(p?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    expect(p?.correctionW).toBeUndefined();
    expect(plain.dispatcher.corrections()).toEqual([]);
  });

  it('honours the meter sign, the deadband and the write interval given', async () => {
    const {
      clock,
      site: s,
      dispatcher,
    } = setup({
      extra: {
        buildings: { office: { device: 'meter', point: 'W', sign: -1 } },
        correction: { deadbandW: 1000, minWriteIntervalMs: 60_000 },
      },
    });
    // This meter counts export positive: 1800 W export is 800 W beyond the planned 1000 W, inside the deadband.
    s.meterW = 1800;
    const [bat] = await dispatcher.apply(plan([0, 0], [-1000, -1000]));
    expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: 0 });
    s.meterW = 3000;
    clock.advance(T0 + 59_000 - clock.now());
    expect(await dispatcher.sample()).toEqual([]);
    clock.advance(T0 + 60_000 - clock.now());
    expect((await dispatcher.sample())[0]).toMatchObject({ deviationW: -2000, correctionW: -2000 });
  });

  it('splits a correction among a building’s batteries by headroom, none charging while another discharges', async () => {
    const { site: s, dispatcher } = setup({ two: true });
    // Plan: the first battery discharges 1000 W, the second idles; 5000 W of export appear beyond the plan.
    s.bat = 1000;
    s.meterW = -5000;
    const outcomes = await dispatcher.apply(plan([1000, 0], [0, 0], [0, 0]));
    // 1000 W taken off the discharge, then 4000 W by headroom: 4000 W (124: min of both maxima) and 2000 W.
    expect(outcomes.map((o) => [o.der, o.setpoint, o.correctionW])).toEqual([
      ['battery', { kind: 'battery', powerW: -2667 }, -3667],
      ['second', { kind: 'battery', powerW: -1333 }, -1333],
    ]);
    expect(dispatcher.corrections()[0]?.correctionW).toBe(-5000);
  });

  it('adds no charge to a battery at its SoC maximum', async () => {
    const { site: s, dispatcher } = setup({ two: true, socMaxPct: 90 });
    s.soc = 90;
    s.meterW = -3000;
    const outcomes = await dispatcher.apply(plan([0, 0], [0, 0], [0, 0]));
    expect(outcomes.map((o) => [o.der, o.setpoint, o.clipped])).toEqual([
      ['battery', { kind: 'battery', powerW: 0 }, ['soc-max']],
      ['second', { kind: 'battery', powerW: -2000 }, ['power-limit']],
    ]);
    expect(dispatcher.corrections()[0]).toMatchObject({ requestedW: -3000, correctionW: -2000 });
  });

  it('writes a re-plan after a correction already under way to the same device, never before it', async () => {
    const { keeper, clock, site: s, dispatcher } = setup();
    s.meterW = -1000;
    await dispatcher.apply(plan([0, 0], [-1000, -1000]));
    // The keeper holds every write until released, as a slow bus would.
    const gates: (() => void)[] = [];
    const answer = keeper.answer;
    keeper.set = (target, value) => {
      keeper.calls.push(`${target.device}.${target.control.point.key}=${value}`);
      return new Promise((resolve) => gates.push(() => resolve(answer(target, value))));
    };
    keeper.calls.length = 0;
    clock.advance(T0 + 20_000 - clock.now());
    s.meterW = -4000;
    const correcting = dispatcher.sample();
    // A re-plan for the same interval while the correction's first write is out: the battery to discharge (and
    // the readings as they are by then show no deviation from the new plan).
    s.meterW = 3000;
    s.bat = -3000;
    const replanned = dispatcher.apply(plan([1000, 0], [-1000, -1000]));
    while (gates.length > 0 || keeper.calls.length < 6) {
      const open = gates.shift();
      if (open === undefined) await new Promise((r) => setImmediate(r));
      else open();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all([correcting, replanned]);
    expect(keeper.calls).toEqual([
      'bat.InWRte=100',
      'bat.OutWRte=-75',
      'bat.StorCtl_Mod=3',
      'bat.OutWRte=100',
      'bat.InWRte=-20',
      'bat.StorCtl_Mod=3',
    ]);
  });
});
