/**
 * SunSpec discovery: find the "SunS" marker and walk the model chain of a device. Decoding the models is the codec's
 * job; this only says which models are where.
 */
import { type ModbusBus, ModbusError } from './types.js';

/** "SunS" as two registers. */
export const SUNSPEC_MARKER: readonly [number, number] = [0x5375, 0x6e53];
/** Where SunSpec devices put the marker, in the order the SunSpec specification says to look. */
export const SUNSPEC_BASES: readonly number[] = [40000, 0, 50000];
/** A model ID of 0xFFFF ends the chain. */
export const SUNSPEC_END_ID = 0xffff;

/** One model in the chain. */
export interface SunSpecModelRef {
  readonly id: number;
  /** Absolute address of the model's ID register (its L register follows; the first point is at address + 2). */
  readonly address: number;
  /** The model's L: registers after ID and L. */
  readonly length: number;
}

/** Why the walk stopped. */
export type SunSpecStop = 'end-marker' | 'illegal-address' | 'max-models' | 'address-space';

/** The layout of a SunSpec device. */
export interface SunSpecLayout {
  /** Address of the "SunS" marker. */
  readonly base: number;
  readonly models: SunSpecModelRef[];
  /** True when the chain ended with the 0xFFFF end model; false when it ran into an unmapped address or a limit. */
  readonly endMarker: boolean;
  readonly stoppedBy: SunSpecStop;
}

/** Where to look and how far to walk. */
export interface DiscoveryOptions {
  /** Marker addresses to try, in order. Default 40000, 0, 50000. */
  readonly bases?: readonly number[];
  /** Stop after this many models (a device with a broken chain must not be walked forever). Default 64. */
  readonly maxModels?: number;
}

/** The device has no "SunS" marker at any of the addresses tried. */
export class SunSpecNotFoundError extends Error {
  override name = 'SunSpecNotFoundError';
  constructor(
    message: string,
    /** The addresses tried, in order, each with what was found there. */
    readonly tried: ReadonlyArray<{ readonly address: number; readonly found: string }>,
  ) {
    super(message);
  }
}

const hex = (v: number) => `0x${v.toString(16).toUpperCase().padStart(4, '0')}`;

function isModbusException(err: unknown): err is ModbusError {
  return err instanceof ModbusError && err.kind === 'exception';
}

/**
 * Finds the SunSpec marker (FC 3) at each base in turn and walks the model chain from there: the next model is at
 * address + 2 + L; the walk stops at the 0xFFFF end model, at a Modbus exception (many devices have no end marker and
 * answer "illegal data address" after the last model), or at `maxModels`.
 * Rejects with SunSpecNotFoundError (naming the addresses tried and what was there) when no base has the marker, and
 * with the bus's ModbusError when the device does not answer at all (a dead device is not "not SunSpec").
 */
export async function discoverSunSpec(
  bus: ModbusBus,
  unit: number,
  options: DiscoveryOptions = {},
): Promise<SunSpecLayout> {
  const bases = options.bases ?? SUNSPEC_BASES;
  const maxModels = options.maxModels ?? 64;
  const tried: Array<{ address: number; found: string }> = [];
  let base: number | undefined;
  for (const candidate of bases) {
    try {
      const regs = await bus.read(unit, 3, candidate, 2);
      if (regs[0] === SUNSPEC_MARKER[0] && regs[1] === SUNSPEC_MARKER[1]) {
        base = candidate;
        break;
      }
      tried.push({ address: candidate, found: `${hex(regs[0] ?? 0)} ${hex(regs[1] ?? 0)}` });
    } catch (err) {
      if (!isModbusException(err)) throw err;
      tried.push({ address: candidate, found: `exception ${err.details.exceptionCode ?? '?'}` });
    }
  }
  if (base === undefined) {
    const list = tried.map((t) => `${t.address} (${t.found})`).join(', ');
    throw new SunSpecNotFoundError(
      `bus "${bus.name}" unit ${unit}: not a SunSpec device: no "SunS" marker (0x5375 0x6E53) in holding registers ` +
        `at ${list}. Configure a device-specific profile, or the device's SunSpec base address if it uses another.`,
      tried,
    );
  }

  const models: SunSpecModelRef[] = [];
  let address = base + 2;
  for (;;) {
    if (models.length >= maxModels) return { base, models, endMarker: false, stoppedBy: 'max-models' };
    if (address > 0xffff) return { base, models, endMarker: false, stoppedBy: 'address-space' };
    let header: number[];
    try {
      header = address === 0xffff ? await bus.read(unit, 3, address, 1) : await bus.read(unit, 3, address, 2);
    } catch (err) {
      if (!isModbusException(err)) throw err;
      // The end model's L may be unmapped: an ID of 0xFFFF alone is still the end marker.
      const id = await readOne(bus, unit, address);
      if (id === SUNSPEC_END_ID) return { base, models, endMarker: true, stoppedBy: 'end-marker' };
      return { base, models, endMarker: false, stoppedBy: 'illegal-address' };
    }
    const id = header[0]!;
    if (id === SUNSPEC_END_ID) return { base, models, endMarker: true, stoppedBy: 'end-marker' };
    const length = header[1];
    if (length === undefined) return { base, models, endMarker: false, stoppedBy: 'address-space' };
    models.push({ id, address, length });
    address += 2 + length;
  }
}

async function readOne(bus: ModbusBus, unit: number, address: number): Promise<number | undefined> {
  try {
    return (await bus.read(unit, 3, address, 1))[0];
  } catch (err) {
    if (isModbusException(err)) return undefined;
    throw err;
  }
}
