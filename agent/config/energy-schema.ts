/**
 * The energy side of the site: tariffs, buildings with their DERs, and the optimizer's settings. DERs name the
 * polled devices (devices:) that measure and control them; energy-check.ts checks those references, the tariffs
 * and the limits that must agree with each other, with the same file:line reporting as every other section.
 */
import { Type } from '@sinclair/typebox';
import { Section, StringEnum } from './schema-kit.js';

const NAME = { pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 32 };
const CLOCK_TIME = {
  pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$',
  description: 'Local time of day, HH:MM (24:00 = end of the day).',
};
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const Watts = (description: string, extra: { default?: number; minimum?: number } = {}) =>
  Type.Number({ minimum: extra.minimum ?? 0, maximum: 100_000_000, description, ...extra });
const Pct = (description: string, def: number) => Type.Number({ minimum: 0, maximum: 100, default: def, description });
const Price = (description: string) => Type.Number({ minimum: -10, maximum: 100, description });

export const pricePeriodSchema = Section(
  {
    from: Type.String({ ...CLOCK_TIME }),
    to: Type.String({ ...CLOCK_TIME }),
    price: Price('Price in this period, currency per kWh.'),
    days: Type.Optional(
      Type.Array(StringEnum(DAYS, { description: 'A day of the week.' }), {
        minItems: 1,
        description: 'Days the period applies on; every day when left out.',
      }),
    ),
  },
  { description: 'A time-of-use period; `to` before `from` wraps past midnight.' },
);

export const priceSchema = Section(
  {
    price: Price('Price outside every period, currency per kWh (e.g. 0.30).'),
    periods: Type.Array(pricePeriodSchema, {
      default: [],
      description: 'Time-of-use periods in local time; the first that matches wins.',
    }),
  },
  { description: 'A price per kWh that may depend on the local time of day.' },
);

export const tariffSchema = Section(
  {
    name: Type.String({ ...NAME, description: 'Name buildings use to refer to this tariff.' }),
    import: priceSchema,
    export: priceSchema,
  },
  { description: 'What the grid charges for imports and pays for exports.' },
);

export const pvSchema = Section(
  {
    device: Type.String({ minLength: 1, description: 'The polled device (devices[].name) of the PV inverter.' }),
    point: Type.String({ minLength: 1, default: 'W', description: 'Its AC power point, W.' }),
    peakWp: Watts('Installed DC peak power, Wp.', { minimum: 1 }),
    acRatingW: Watts('Inverter AC rating, W.', { minimum: 1 }),
    tiltDeg: Type.Number({ minimum: 0, maximum: 90, default: 30, description: 'Module tilt from horizontal, °.' }),
    azimuthDeg: Type.Number({
      minimum: 0,
      maximum: 360,
      default: 180,
      description: 'Module azimuth, ° clockwise from north (180 = south).',
    }),
    performanceRatio: Type.Number({
      minimum: 0.1,
      maximum: 1,
      default: 0.85,
      description: 'AC output per unit of clear-sky DC potential (losses of wiring, heat, inverter).',
    }),
    curtailable: Type.Boolean({
      default: true,
      description: 'Whether the optimizer may limit its output (SunSpec 123 WMaxLimPct).',
    }),
  },
  { description: 'A PV plant.' },
);

export const batterySchema = Section(
  {
    device: Type.String({ minLength: 1, description: 'The polled device (devices[].name) of the battery inverter.' }),
    point: Type.String({ minLength: 1, default: 'W', description: 'Its AC power point, W (+ discharging).' }),
    socPoint: Type.String({ minLength: 1, default: 'ChaState', description: 'Its state-of-charge point, %.' }),
    capacityWh: Watts('Usable nominal capacity, Wh.', { minimum: 1 }),
    maxChargeW: Watts('Largest charging power, W (AC).'),
    maxDischargeW: Watts('Largest discharging power, W (AC).'),
    socMinPct: Pct('Lowest state of charge the BMS allows, %.', 10),
    socMaxPct: Pct('Highest state of charge the BMS allows, %.', 95),
    reservePct: Pct('Backup reserve the schedule never plans to go below, % (at least socMinPct).', 20),
    chargeEfficiency: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.96, description: 'AC to cells.' }),
    dischargeEfficiency: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.96, description: 'Cells to AC.' }),
    degradationCostPerKWh: Type.Number({
      minimum: 0,
      maximum: 10,
      default: 0.03,
      description: 'Wear cost per kWh passed through (charged plus discharged), currency.',
    }),
    terminal: StringEnum(['keep', 'free'], {
      default: 'keep',
      description: 'keep: the plan ends with at least the energy it starts with; free: no condition.',
    }),
  },
  { description: 'A stationary battery.' },
);

export const evChargerSchema = Section(
  {
    device: Type.String({ minLength: 1, description: 'The polled device (devices[].name) of the charger.' }),
    point: Type.String({ minLength: 1, default: 'W', description: 'Its charging power point, W.' }),
    maxPowerW: Watts('Largest charging power, W.', { minimum: 1 }),
    phases: Type.Integer({ minimum: 1, maximum: 3, default: 3, description: 'Phases the car charges on.' }),
    energyWh: Watts('Energy a plugged-in car is assumed to need, Wh (until the charger reports its session).', {
      default: 20_000,
    }),
    departure: Type.String({
      ...CLOCK_TIME,
      default: '17:30',
      description: 'Local time a plugged-in car leaves; its energy is planned to be in by then.',
    }),
    shortfallCostPerKWh: Type.Number({
      minimum: 0,
      maximum: 100,
      default: 1,
      description: 'Cost of a kWh not charged by departure (how hard the plan tries).',
    }),
  },
  { description: 'An EV charger.' },
);

export const flexibleLoadSchema = Section(
  {
    name: Type.String({ ...NAME, description: 'Name of the load in schedules and logs.' }),
    kind: StringEnum(['shiftable', 'curtailable'], {
      description: 'shiftable: energy to run within a window; curtailable: a baseline that may be shed at a cost.',
    }),
    device: Type.Optional(Type.String({ minLength: 1, description: 'The polled device that switches it, if any.' })),
    maxPowerW: Watts('Largest power, W.', { minimum: 1 }),
    energyWh: Type.Optional(Watts('shiftable: energy to run each day, Wh.')),
    window: Type.Optional(
      Section(
        { from: Type.String({ ...CLOCK_TIME }), to: Type.String({ ...CLOCK_TIME }) },
        { description: 'shiftable: local time window to run in; `to` before `from` wraps past midnight.' },
      ),
    ),
    baselineW: Type.Optional(Watts('curtailable: its usual power, W.')),
    maxShedFraction: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 1,
      description: 'curtailable: largest share of the baseline that may be shed.',
    }),
    costPerKWh: Type.Number({
      minimum: 0,
      maximum: 100,
      default: 0.5,
      description: 'curtailable: cost of a kWh shed; shiftable: cost of a kWh not run in its window.',
    }),
  },
  { description: 'A load the optimizer may move or shed.' },
);

export const buildingSchema = Section(
  {
    name: Type.String({ ...NAME, description: 'Name of the building in schedules, logs and status.' }),
    tariff: Type.String({ minLength: 1, description: 'Name of its tariff (tariffs[].name).' }),
    importLimitW: Watts('Largest import at its grid connection, W.'),
    exportLimitW: Watts('Largest export at its grid connection, W (0: no feed-in).'),
    load: Section(
      {
        meter: Type.Optional(
          Type.String({
            minLength: 1,
            description:
              'The polled device measuring its grid connection (W, + import); consumption = meter + PV + battery.',
          }),
        ),
        meterPoint: Type.String({ minLength: 1, default: 'W', description: "The meter's power point." }),
        defaultW: Watts('Consumption assumed while there is no history to learn from, W.', { default: 2000 }),
      },
      { description: 'How the inflexible consumption is measured and forecast.' },
    ),
    pv: Type.Array(pvSchema, { default: [], description: 'PV plants.' }),
    batteries: Type.Array(batterySchema, { default: [], description: 'Batteries.' }),
    evChargers: Type.Array(evChargerSchema, { default: [], description: 'EV chargers.' }),
    flexibleLoads: Type.Array(flexibleLoadSchema, { default: [], description: 'Shiftable and curtailable loads.' }),
  },
  { description: 'A building: its grid connection, tariff, DERs and loads.' },
);

export const optimizerSchema = Section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Plan and dispatch the buildings (role mgmc, when buildings are configured).',
    }),
    dispatch: Type.Boolean({
      default: true,
      description: 'Write the schedule as setpoints to the devices; false plans and records only.',
    }),
    stepMinutes: Type.Unsafe<5 | 10 | 15 | 30 | 60>({
      type: 'integer',
      enum: [5, 10, 15, 30, 60],
      default: 15,
      description: 'Length of a schedule interval, minutes: 5, 10, 15, 30 or 60.',
    }),
    horizonHours: Type.Integer({ minimum: 1, maximum: 168, default: 24, description: 'How far ahead to plan.' }),
    timeZone: Type.String({
      minLength: 1,
      default: 'UTC',
      description: 'IANA time zone of tariffs, windows and departures (e.g. Europe/Berlin).',
    }),
    location: Section(
      {
        latitudeDeg: Type.Number({ minimum: -90, maximum: 90, default: 48.14, description: 'Latitude, °.' }),
        longitudeDeg: Type.Number({ minimum: -180, maximum: 180, default: 11.58, description: 'Longitude, ° east.' }),
      },
      { description: 'Where the site is, for the PV clear-sky forecast.' },
    ),
    timeLimitSeconds: Type.Number({
      minimum: 0.1,
      maximum: 600,
      default: 10,
      description: 'Longest a solve may take; the best schedule found by then is used.',
    }),
    revertSeconds: Type.Integer({
      minimum: 10,
      maximum: 3600,
      default: 60,
      description: 'Revert timeout written with every setpoint; the keeper re-sends at half of it.',
    }),
  },
  { description: 'The building schedule optimizer.' },
);

export const energySections = {
  tariffs: Type.Array(tariffSchema, { default: [], description: 'Grid tariffs the buildings refer to.' }),
  buildings: Type.Array(buildingSchema, { default: [], description: 'Buildings the optimizer plans for.' }),
  optimizer: optimizerSchema,
};
