/**
 * Dispatch against the simulator (issue 5, "Dispatch"): a hand-made schedule (the battery charges, then discharges;
 * the PV is curtailed; the EV charges at a set current) goes through the Dispatcher and the SetpointKeeper to the
 * simulated devices over Modbus TCP. The setpoints arrive (the physics follow them, and the poller reads it), are
 * read back, and are re-sent before the devices' revert timers run out; when the renewals stop, the simulator's
 * revert timers drop them and the dispatcher records the deviations in the ledger.
 *
 * One ManualClock drives the site's physics, the poller, the keeper and the dispatcher, so simulated time is agent
 * time; only the Modbus requests travel on real sockets (their timeouts on the system clock).
 *
 * The real-time correction: on a clear Sunday noon the plan expected 1 kW export with the battery idle; the grid
 * meter (SunSpec 203 on the LAN) shows several kW more. The dispatcher charges the surplus beyond the planned export
 * into the battery, so the connection exports what was planned, and the battery's deviation is judged against the
 * corrected setpoint.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../agent/clock.js';
import { type NewRecord, validateBody } from '../../agent/ledger/records.js';
import { silentLogger } from '../../agent/logger.js';
import {
  type DispatchableDevice,
  type DispatchDevice,
  Dispatcher,
  resolveDispatchDevices,
} from '../../agent/optimizer/dispatch.js';
import type { SiteSchedule } from '../../agent/optimizer/schedule.js';
import { Poller } from '../../agent/poll/poller.js';
import { SetpointKeeper } from '../../agent/poll/setpoints.js';
import { openModbusBus } from '../../hardware/modbus/client.js';
import { discoverSunSpec } from '../../hardware/modbus/discovery.js';
import { planReads } from '../../hardware/modbus/plan.js';
import type { ModbusBus, PlacedPoint } from '../../hardware/modbus/types.js';
import { loadCatalogue } from '../../hardware/profile/load.js';
import { placeProfile } from '../../hardware/profile/place.js';
import { type SimulatedSite, startSimulatedSite } from '../../sim/serve.js';
import { defaultSimSite, type SimSiteConfig } from '../../sim/site-file.js';

const T0 = Date.UTC(2024, 5, 17, 10, 0);
const STEP = 300_000;
const REVERT_S = 30;
const REFRESH_MS = 20_000;

/** The default site on its TCP server only, at 10:00 UTC on a clear Monday with a car plugged in all day. */
function siteConfig(): SimSiteConfig {
  const base = defaultSimSite();
  return {
    ...base,
    description: {
      ...base.description,
      start: new Date(T0).toISOString(),
      cloudiness: 0,
      devices: base.description.devices.map((d) =>
        d.kind === 'ev-charger'
          ? {
              ...d,
              params: {
                maxCurrentA: 16,
                phases: 3,
                sessions: [{ arrival: '2024-06-17T10:00:00Z', departure: '2024-06-17T18:00:00Z', energyWh: 60_000 }],
              },
            }
          : d,
      ),
    },
    servers: base.servers.filter((s) => s.kind === 'tcp'),
    devices: base.devices.filter((d) => d.server === 'lan'),
    signingMeters: [],
  };
}

interface WriteLog {
  readonly t: number;
  readonly unit: number;
  readonly start: number;
  readonly values: readonly number[];
}

/** A bus that remembers every write and can wait until nothing is in flight (no timing involved). */
function watched(bus: ModbusBus, clock: ManualClock) {
  const pending = new Set<Promise<unknown>>();
  const writes: WriteLog[] = [];
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    p.then(
      () => pending.delete(p),
      () => pending.delete(p),
    );
    return p;
  };
  const wrapped: ModbusBus = {
    name: bus.name,
    read: (unit, fn, start, count) => track(bus.read(unit, fn, start, count)),
    write: (unit, start, values) => {
      writes.push({ t: clock.now(), unit, start, values: [...values] });
      return track(bus.write(unit, start, values));
    },
    health: (unit) => bus.health(unit),
    close: () => bus.close(),
  };
  return {
    bus: wrapped,
    writes,
    /** Resolves once every request, and every request those started, has been answered. */
    async settle(): Promise<void> {
      for (;;) {
        await Promise.allSettled([...pending]);
        await new Promise((r) => setImmediate(r));
        if (pending.size === 0) return;
      }
    },
  };
}

describe('dispatch against the simulated site', () => {
  let sim: SimulatedSite;
  let raw: ModbusBus;

  afterAll(async () => {
    await raw?.close();
    await sim?.close();
  });

  it('setpoints arrive, are read back, are re-sent before the revert timer, and lapse without renewal', async () => {
    const clock = new ManualClock(T0);
    sim = await startSimulatedSite(siteConfig(), { clock, speed: 1 });
    expect(sim.clock.now()).toBe(T0);
    const lan = sim.endpoints.find((e) => e.kind === 'tcp');
    if (lan?.kind !== 'tcp') throw new Error('the default site has no TCP server');
    raw = openModbusBus({ name: 'lan', kind: 'tcp', host: lan.host, port: lan.port }, { clock: systemClock() });
    const io = watched(raw, clock);
    const bus = io.bus;

    // The devices as the agent resolves them: SunSpec discovery for the inverters, the Alfen map as it is.
    const catalogue = loadCatalogue();
    const sunspecPoints = async (unit: number): Promise<PlacedPoint[]> => {
      const layout = await discoverSunSpec(bus, unit);
      return layout.models.flatMap((m) => {
        const profile = catalogue.bySunspecModel(m.id);
        return profile === undefined ? [] : placeProfile(profile, m.address);
      });
    };
    const devices: DispatchableDevice[] = [
      { name: 'pv', bus, unit: 1, points: await sunspecPoints(1) },
      { name: 'battery', bus, unit: 2, points: await sunspecPoints(2) },
      { name: 'ev', bus, unit: 3, points: placeProfile(catalogue.get('alfen-eve'), 0) },
    ];
    const building = 'example-office';
    const {
      devices: dispatchable,
      problems,
      warnings,
    } = resolveDispatchDevices(
      [
        {
          kind: 'battery',
          building,
          der: 'battery',
          device: 'battery',
          maxChargeW: 5000,
          maxDischargeW: 5000,
          reservePct: 20,
        },
        { kind: 'pv', building, der: 'pv', device: 'pv', ratedW: 9000 },
        { kind: 'ev', building, der: 'car', device: 'ev', phases: 3, maxCurrentA: 16 },
      ],
      devices,
    );
    expect(problems).toEqual([]);
    expect(warnings).toEqual([]);

    // The ledger: readings from the poller, events from the keeper and the dispatcher.
    const ledger: NewRecord[] = [];
    const sink = { append: (records: readonly NewRecord[]) => void ledger.push(...records) };
    const logger = silentLogger();
    const wanted: Record<string, string[]> = { pv: ['W'], battery: ['W', 'ChaState'], ev: ['W'] };
    let dispatcher: Dispatcher | undefined;
    const poller = new Poller(
      devices.map((d) => {
        const points = d.points.filter((p) => wanted[d.name]?.includes(p.key));
        return {
          name: d.name,
          bus,
          unit: d.unit,
          blocks: planReads(points, { maxGap: 8 }),
          record: new Set(points.map((p) => p.key)),
          intervalMs: 10_000,
          priority: 0,
        };
      }),
      { clock, logger, sink, onCycle: () => dispatcher?.sample() },
    );
    const keeper = new SetpointKeeper({ clock, logger, sink, revertSeconds: REVERT_S, refreshMs: REFRESH_MS });
    dispatcher = new Dispatcher({
      keeper,
      devices: dispatchable,
      sink,
      clock,
      logger,
      limits: { exportLimitW: { [building]: 30_000 } },
      latest: (name) => poller.latest(name),
    });

    const schedule: SiteSchedule = {
      horizon: { start: T0, stepMs: STEP, steps: 2 },
      status: 'optimal',
      buildings: [
        {
          name: building,
          netW: [0, 0],
          gridImportW: [0, 0],
          gridExportW: [0, 0],
          unservedW: [0, 0],
          ders: [
            { name: 'battery', kind: 'battery', powerW: [-3000, 2000] },
            { name: 'pv', kind: 'pv', powerW: [2700, 2700], availableW: [9000, 9000] },
            { name: 'car', kind: 'ev', powerW: [5520, 5520] },
          ],
          marginalPrice: [0, 0],
          cost: { import: 0, export: 0, degradation: 0, trades: 0, curtailment: 0, penalties: 0, total: 0 },
        },
      ],
      netPositionW: [0, 0],
      cost: { import: 0, export: 0, degradation: 0, trades: 0, curtailment: 0, penalties: 0, total: 0 },
      diagnosis: [],
      solveMs: 0,
      mip: false,
    };

    const snapshot = () => {
      const s = sim.site.snapshot().devices;
      const battery = s.battery;
      const pv = s.pv;
      const ev = s.ev;
      if (battery?.kind !== 'battery' || pv?.kind !== 'pv-inverter' || ev?.kind !== 'ev-charger') {
        throw new Error('the simulated site lacks its battery, PV inverter or charger');
      }
      return { battery, pv, ev };
    };
    /** Lets simulated time pass a second at a time; every renewal goes out at its own time. */
    const held: boolean[] = [];
    const advance = async (ms: number) => {
      for (let done = 0; done < ms; done += 1000) {
        clock.advance(1000);
        await io.settle();
        const s = snapshot();
        held.push(s.battery.rateSetpoint?.active === true && s.pv.powerLimit?.active === true);
      }
    };

    poller.start();
    clock.advance(0);
    await io.settle();
    expect(poller.latest('battery').get('ChaState')?.value).toBe(50);

    // Interval 0: charge 3000 W, PV limited to 30 %, the car at 8 A.
    const first = await dispatcher.apply(schedule);
    expect(first.map((o) => [o.der, o.status])).toEqual([
      ['battery', 'ok'],
      ['pv', 'ok'],
      ['car', 'ok'],
    ]);
    expect(first.map((o) => o.setpoint)).toEqual([
      { kind: 'battery', powerW: -3000 },
      { kind: 'pv', limitW: 2700, limitPct: 30 },
      { kind: 'ev', currentA: 8, powerW: 5520 },
    ]);
    // Read back: the device reports exactly what was written.
    expect(first[0]?.writes.map((w) => [w.point, w.readBack])).toEqual([
      ['InWRte', 100],
      ['OutWRte', -60],
      ['StorCtl_Mod', 3],
    ]);
    expect(first[1]?.writes.map((w) => [w.point, w.readBack])).toEqual([['WMaxLimPct', 30]]);
    expect(first[2]?.writes.map((w) => [w.point, w.readBack])).toEqual([['MaxCurrent', 8]]);
    const registers = (name: string) => sim.devices.get(name)?.registers;
    expect(registers('battery')?.value('InOutWRte_RvrtTms')).toBe(REVERT_S);
    expect(registers('pv')?.value('WMaxLim_Ena')).toBe(1);

    await advance(1000);
    let s = snapshot();
    expect(s.battery.powerW).toBeCloseTo(-3000, 6);
    expect(s.pv.acPowerW).toBeCloseTo(2700, 6);
    expect(s.pv.availablePowerW).toBeGreaterThan(4000);
    expect(s.ev.offeredCurrentA).toBe(8);
    expect(s.ev.powerW).toBeGreaterThan(5000);
    expect(s.ev.powerW).toBeLessThan(6000);

    // Four revert timeouts later every setpoint still holds: the keeper re-sent each one in time.
    await advance(4 * REVERT_S * 1000);
    s = snapshot();
    expect(held.every(Boolean)).toBe(true);
    expect(s.battery.powerW).toBeCloseTo(-3000, 6);
    expect(s.battery.rateSetpoint?.remainingS).toBeGreaterThan(0);
    expect(s.pv.acPowerW).toBeCloseTo(2700, 6);
    expect(s.ev.offeredCurrentA).toBe(8);
    // The poller sees the same: the battery's W as the agent reads it.
    expect(poller.latest('battery').get('W')?.value).toBe(-3000);
    const control = (d: DispatchDevice | undefined) => d?.controls;
    const bat = control(dispatchable[0]);
    const inv = control(dispatchable[1]);
    const box = control(dispatchable[2]);
    if (bat?.protocol !== 'sunspec-124' || inv?.protocol !== 'sunspec-123' || box?.protocol !== 'ev-current') {
      throw new Error('unexpected controls');
    }
    const gaps = (unit: number, point: PlacedPoint, from: number, to: number) => {
      const times = io.writes.filter((w) => w.unit === unit && w.start === point.address && w.t >= from && w.t <= to);
      return times.slice(1).map((w, i) => w.t - (times[i] as WriteLog).t);
    };
    const heldUntil = clock.now();
    for (const [unit, point, most] of [
      [2, bat.inRate.point, (REVERT_S * 1000) / 2],
      [2, bat.outRate.point, (REVERT_S * 1000) / 2],
      [1, inv.limit.point, (REVERT_S * 1000) / 2],
      [2, bat.mode.point, REFRESH_MS],
      [3, box.current.point, REFRESH_MS],
    ] as const) {
      const g = gaps(unit, point, T0, heldUntil);
      expect(g.length, point.key).toBeGreaterThanOrEqual(5);
      expect(Math.max(...g), point.key).toBeLessThanOrEqual(most);
    }
    // The charger's validity (60 s) is renewed on the refresh period: MaxCurrentValidTime never ran low.
    expect(s.ev.limit?.remainingS).toBeGreaterThan(60 - REFRESH_MS / 1000 - 1);

    // Interval 0 ends: the response matched, no deviation is recorded.
    await advance(T0 + STEP - clock.now());
    const firstReports = dispatcher.recordDeviations();
    expect(firstReports.map((r) => [r.der, r.exceeded])).toEqual([
      ['battery', false],
      ['pv', false],
      ['car', false],
    ]);
    expect(firstReports.find((r) => r.der === 'battery')?.samples).toBeGreaterThanOrEqual(25);
    expect(ledger.filter((r) => r.type === 'event')).toEqual([]);

    // Interval 1: the battery turns round and discharges 2000 W (its SoC is well above the 20 % reserve).
    const second = await dispatcher.apply(schedule);
    expect(second.map((o) => [o.der, o.status, o.step])).toEqual([
      ['battery', 'ok', 1],
      ['pv', 'ok', 1],
      ['car', 'ok', 1],
    ]);
    expect(second[0]?.writes.map((w) => [w.point, w.readBack])).toEqual([
      ['OutWRte', 100],
      ['InWRte', -40],
      ['StorCtl_Mod', 3],
    ]);
    await advance(30_000);
    s = snapshot();
    expect(s.battery.powerW).toBeCloseTo(2000, 6);
    expect(s.battery.socPct).toBeGreaterThan(50);

    // The negative control: the keeper stops renewing. The devices hold the setpoints until their revert timers
    // run out, then drop them: the battery idles, the PV goes back to full output, the charger to its safe current.
    keeper.stop();
    const stoppedAt = clock.now();
    await advance(REVERT_S * 1000 + 1000);
    s = snapshot();
    expect(s.battery.rateSetpoint?.active).toBe(false);
    expect(s.battery.powerW).toBe(0);
    expect(registers('battery')?.value('StorCtl_Mod')).toBe(0);
    expect(s.pv.powerLimit?.active).toBe(false);
    expect(s.pv.acPowerW).toBeGreaterThan(4000);
    expect(registers('pv')?.value('WMaxLim_Ena')).toBe(0);
    await advance(60_000);
    s = snapshot();
    expect(s.ev.limit?.active).toBe(false);
    expect(s.ev.offeredCurrentA).toBe(16);
    expect(io.writes.filter((w) => w.t > stoppedAt)).toEqual([]);

    // At the end of interval 1 the dispatcher compares and records what the devices did instead.
    await advance(T0 + 2 * STEP - clock.now());
    const reports = dispatcher.recordDeviations();
    expect(reports.map((r) => [r.der, r.exceeded])).toEqual([
      ['battery', true],
      ['pv', true],
      ['car', true],
    ]);
    const events = ledger.filter((r) => r.type === 'event' && r.body.kind === 'dispatch-deviation');
    expect(events.map((e) => e.body.der)).toEqual(['battery', 'pv', 'car']);
    for (const e of events) {
      validateBody('event', e.body);
      for (const field of ['interval', 'setpointW', 'measuredW', 'deviationW', 'toleranceW', 'samples']) {
        expect(Number.isSafeInteger(e.body[field]), field).toBe(true);
      }
    }
    const battery = events[0]?.body;
    expect(battery?.setpointW).toBe(2000);
    expect(battery?.deviationW).toBeLessThan(-1000);
    expect(String(battery?.message)).toMatch(/set to 2000 W but measured \d+ W .* below/);

    await poller.stop();
    await io.settle();
  }, 60_000);

  it('charges an unplanned PV surplus into the battery, so the connection exports what was planned', async () => {
    const sunday = Date.UTC(2024, 5, 16, 10, 0);
    const clock = new ManualClock(sunday);
    const base = defaultSimSite();
    const pvMeter = base.devices.find((d) => d.name === 'pv-meter');
    if (pvMeter === undefined) throw new Error('the default site has no pv-meter to copy');
    const site = await startSimulatedSite(
      {
        ...base,
        description: { ...base.description, start: new Date(sunday).toISOString(), cloudiness: 0 },
        servers: base.servers.filter((x) => x.kind === 'tcp'),
        devices: [
          ...base.devices.filter((d) => d.name === 'pv' || d.name === 'battery'),
          // The connection meter as a SunSpec meter on the LAN (the default site has it on RS-485).
          { ...pvMeter, name: 'grid-meter', unit: 5 },
        ],
        signingMeters: [],
      },
      { clock, speed: 1 },
    );
    const lan = site.endpoints.find((e) => e.kind === 'tcp');
    if (lan?.kind !== 'tcp') throw new Error('no TCP server');
    const tcp = openModbusBus({ name: 'lan', kind: 'tcp', host: lan.host, port: lan.port }, { clock: systemClock() });
    try {
      const io = watched(tcp, clock);
      const bus = io.bus;
      const catalogue = loadCatalogue();
      const sunspecPoints = async (unit: number): Promise<PlacedPoint[]> => {
        const layout = await discoverSunSpec(bus, unit);
        return layout.models.flatMap((m) => {
          const profile = catalogue.bySunspecModel(m.id);
          return profile === undefined ? [] : placeProfile(profile, m.address);
        });
      };
      const devices: DispatchableDevice[] = [
        { name: 'battery', bus, unit: 2, points: await sunspecPoints(2) },
        { name: 'grid-meter', bus, unit: 5, points: await sunspecPoints(5) },
      ];
      const building = 'example-office';
      const resolved = resolveDispatchDevices(
        [
          {
            kind: 'battery',
            building,
            der: 'battery',
            device: 'battery',
            maxChargeW: 5000,
            maxDischargeW: 5000,
            reservePct: 20,
            socMaxPct: 95,
          },
        ],
        devices,
      );
      expect(resolved.problems).toEqual([]);
      const ledger: NewRecord[] = [];
      const sink = { append: (records: readonly NewRecord[]) => void ledger.push(...records) };
      const logger = silentLogger();
      const wanted: Record<string, string[]> = { battery: ['W', 'ChaState'], 'grid-meter': ['W'] };
      let dispatcher: Dispatcher | undefined;
      const corrections: Promise<unknown>[] = [];
      const poller = new Poller(
        devices.map((d) => {
          const points = d.points.filter((p) => wanted[d.name]?.includes(p.key));
          return {
            name: d.name,
            bus,
            unit: d.unit,
            blocks: planReads(points, { maxGap: 8 }),
            record: new Set(points.map((p) => p.key)),
            intervalMs: 2_000,
            priority: 0,
          };
        }),
        {
          clock,
          logger,
          sink,
          onCycle: () => {
            if (dispatcher !== undefined) corrections.push(dispatcher.sample());
          },
        },
      );
      const keeper = new SetpointKeeper({ clock, logger, sink, revertSeconds: REVERT_S, refreshMs: REFRESH_MS });
      dispatcher = new Dispatcher({
        keeper,
        devices: resolved.devices,
        sink,
        clock,
        logger,
        latest: (name) => poller.latest(name),
        buildings: { [building]: { device: 'grid-meter', point: 'W' } },
      });
      const zero = { import: 0, export: 0, degradation: 0, trades: 0, curtailment: 0, penalties: 0, total: 0 };
      // The plan: 1 kW export, the battery idle (a forecast that expected less sun or more load).
      const schedule: SiteSchedule = {
        horizon: { start: sunday, stepMs: STEP, steps: 1 },
        status: 'optimal',
        buildings: [
          {
            name: building,
            netW: [-1000],
            gridImportW: [0],
            gridExportW: [1000],
            unservedW: [0],
            ders: [{ name: 'battery', kind: 'battery', powerW: [0] }],
            marginalPrice: [0],
            cost: zero,
          },
        ],
        netPositionW: [-1000],
        cost: zero,
        diagnosis: [],
        solveMs: 0,
        mip: false,
      };
      const meterW = () => Number(poller.latest('grid-meter').get('W')?.value);
      const advance = async (ms: number) => {
        for (let done = 0; done < ms; done += 1000) {
          clock.advance(1000);
          await io.settle();
          await Promise.all(corrections.splice(0));
          await io.settle();
        }
      };

      poller.start();
      clock.advance(0);
      await io.settle();
      const exportBefore = -meterW();
      // Noon, clear sky, Sunday load: several kW exported with the battery idle.
      expect(exportBefore).toBeGreaterThan(2500);

      const [bat] = await dispatcher.apply(schedule);
      expect(bat?.status).toBe('ok');
      expect(bat?.plannedW).toBe(0);
      // The surplus beyond the planned 1 kW goes into the battery (within the 200 W deadband of what was measured).
      expect(bat?.correctionW).toBeLessThan(-1500);
      expect(bat?.setpoint).toEqual({ kind: 'battery', powerW: bat?.correctionW });
      expect(Math.abs((bat?.correctionW ?? 0) + exportBefore - 1000)).toBeLessThanOrEqual(200);

      await advance(60_000);
      const snapshot = site.site.snapshot().devices.battery;
      if (snapshot?.kind !== 'battery') throw new Error('no battery in the simulated site');
      expect(snapshot.powerW).toBeLessThan(-1500);
      // The connection exports what was planned, give or take the deadband and the load's noise.
      expect(Math.abs(meterW() + 1000)).toBeLessThan(600);
      const status = dispatcher.corrections()[0];
      expect(status?.problem).toBeUndefined();
      expect(status?.correctionW).toBeLessThan(-1500);
      expect(Math.abs((status?.deviationW ?? 0) - (status?.correctionW ?? 0))).toBeLessThanOrEqual(200);

      // At the end of the interval the battery is judged against the corrected setpoints: no deviation.
      await advance(sunday + STEP - clock.now());
      const reports = dispatcher.recordDeviations();
      expect(reports.map((r) => [r.der, r.exceeded])).toEqual([['battery', false]]);
      expect(reports[0]?.setpointW).toBeLessThan(-1500);
      expect(ledger.filter((r) => r.type === 'event' && r.body.kind === 'dispatch-deviation')).toEqual([]);

      keeper.stop();
      await poller.stop();
      await io.settle();
    } finally {
      await tcp.close();
      await site.close();
    }
  }, 60_000);
});
