/**
 * The field side of the config: buses (one per physical Modbus line or TCP endpoint), the devices on them and the
 * signing meters on serial lines. Cross-references (a device naming a bus or profile that does not exist, a unit id
 * used twice on one bus) are checked by devices-check.ts after the schema, with the same file:line reporting.
 */
import { Type } from '@sinclair/typebox';
import { Section, StringEnum } from './schema-kit.js';

const NAME = {
  pattern: '^[a-z0-9][a-z0-9_-]*$',
  maxLength: 32,
};

export const busSchema = Section(
  {
    name: Type.String({
      ...NAME,
      description: 'Lower-case name of the bus (letters, digits, - and _), used by devices and in logs.',
    }),
    kind: StringEnum(['tcp', 'rtu', 'rtu-over-tcp'], {
      description: 'tcp: Modbus TCP; rtu: Modbus RTU on a serial port (RS-485); rtu-over-tcp: RTU frames to a gateway.',
    }),
    host: Type.Optional(Type.String({ minLength: 1, description: 'Host name or IP address (tcp, rtu-over-tcp).' })),
    port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port (tcp, rtu-over-tcp); 502 when left out.' }),
    ),
    path: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Serial device (rtu), preferably a stable name such as /dev/serial/by-id/... or a udev symlink.',
      }),
    ),
    baudRate: Type.Optional(
      Type.Integer({
        minimum: 300,
        maximum: 4_000_000,
        description: 'Serial speed in baud (rtu); 9600 when left out.',
      }),
    ),
    parity: StringEnum(['none', 'even', 'odd'], { default: 'none', description: 'Serial parity (rtu).' }),
    stopBits: Type.Integer({ minimum: 1, maximum: 2, default: 1, description: 'Serial stop bits (rtu).' }),
    timeoutMs: Type.Integer({
      minimum: 10,
      maximum: 60_000,
      default: 1000,
      description: 'Time to wait for an answer before a request counts as failed.',
    }),
    retries: Type.Integer({
      minimum: 0,
      maximum: 3,
      default: 1,
      description: 'Retries on a fresh connection after a timeout or a lost connection.',
    }),
    maxGap: Type.Integer({
      minimum: 0,
      maximum: 124,
      default: 8,
      description: 'Unused registers a read may span to join two points into one request (0: never read through).',
    }),
    backoff: Section(
      {
        baseMs: Type.Integer({
          minimum: 100,
          maximum: 600_000,
          default: 1000,
          description: 'Wait after the first failure of a device before it is asked again.',
        }),
        maxMs: Type.Integer({
          minimum: 100,
          maximum: 3_600_000,
          default: 60_000,
          description: 'Longest wait: the wait doubles with each failure up to this, then one probe read per wait.',
        }),
      },
      { description: 'Back-off for a failing device, so a dead device never slows the others on its bus.' },
    ),
  },
  { description: 'A physical Modbus bus: requests on one bus are sent one at a time.' },
);

export const deviceSchema = Section(
  {
    name: Type.String({ ...NAME, description: 'Lower-case device name, used in readings, logs and status.' }),
    bus: Type.String({ minLength: 1, description: 'Name of the bus (from buses) the device is on.' }),
    unit: Type.Integer({ minimum: 0, maximum: 255, default: 1, description: 'Modbus unit id (slave address).' }),
    profile: Type.String({
      minLength: 1,
      description:
        'Register map: a profile id from hardware/profiles (e.g. eastron-sdm630), or sunspec to discover the models.',
    }),
    base: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 65535,
        description: 'sunspec only: address of the "SunS" marker, to skip discovery (usually 40000).',
      }),
    ),
    intervalMs: Type.Integer({
      minimum: 100,
      maximum: 3_600_000,
      default: 5000,
      description: 'How often the device is read.',
    }),
    priority: Type.Integer({
      minimum: 0,
      maximum: 9,
      default: 5,
      description: 'When several devices are due on one bus, lower numbers are read first.',
    }),
    points: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'Points to record (profile point names); all points with a unit when left out.',
      }),
    ),
    enabled: Type.Boolean({ default: true, description: 'false keeps the device in the file without polling it.' }),
  },
  { description: 'A Modbus device.' },
);

export const signingMeterSchema = Section(
  {
    name: Type.String({ ...NAME, description: 'Lower-case meter name, used in logs and status.' }),
    path: Type.String({ minLength: 1, description: 'Serial device the meter is on (firmware-bridge protocol).' }),
    baudRate: Type.Integer({ minimum: 300, maximum: 4_000_000, default: 115_200, description: 'Serial speed.' }),
    address: Type.String({
      pattern: '^0x[0-9a-fA-F]{40}$',
      description: "The meter's own address (its signing key); batches signed by any other key are rejected.",
    }),
  },
  { description: 'A meter that signs its readings in firmware (docs/firmware-protocol.md).' },
);

export const devicesSections = {
  buses: Type.Array(busSchema, { default: [], description: 'Modbus buses of the site.' }),
  devices: Type.Array(deviceSchema, { default: [], description: 'Modbus devices polled by the agent.' }),
  meters: Type.Array(signingMeterSchema, {
    default: [],
    description: 'Signing meters (firmware-bridge) whose batches go into the ledger verbatim.',
  }),
};
