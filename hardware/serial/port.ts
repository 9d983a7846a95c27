/**
 * Serial lines (RS-485/RS-232 adapters, USB CDC devices, ptys). The only module that imports the `serialport` package:
 * everything else sees a plain Node Duplex stream.
 */
import { readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { SerialPort } from 'serialport';

/** Serial parity setting. */
export type Parity = 'none' | 'even' | 'odd' | 'mark' | 'space';

/** Line settings for openSerialPort; 8N1 unless given. */
export interface SerialPortOptions {
  /** Device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/usb-FTDI_…-if00-port0 (stable across reboots). */
  readonly path: string;
  readonly baudRate: number;
  /** Default 8. */
  readonly dataBits?: 5 | 6 | 7 | 8;
  /** Default 'none'. */
  readonly parity?: Parity;
  /** Default 1. */
  readonly stopBits?: 1 | 1.5 | 2;
}

/** An open serial line: a Duplex of raw bytes. */
export interface SerialLine extends Duplex {
  readonly path: string;
}

const PARITIES: readonly Parity[] = ['none', 'even', 'odd', 'mark', 'space'];

/**
 * Opens a serial device and resolves with it once it is open. Rejects with an error a technician can act on: a missing
 * device names the path and how to find the right one, a permission problem names the dialout group, a port held by
 * another program says so.
 */
export async function openSerialPort(options: SerialPortOptions): Promise<SerialLine> {
  const { path, baudRate } = options;
  if (typeof path !== 'string' || path === '')
    throw new Error('serial port path is empty: give a device such as /dev/ttyUSB0');
  if (!Number.isInteger(baudRate) || baudRate <= 0) {
    throw new Error(`serial port ${path}: baud rate must be a positive integer, got ${baudRate}`);
  }
  const dataBits = options.dataBits ?? 8;
  if (![5, 6, 7, 8].includes(dataBits))
    throw new Error(`serial port ${path}: data bits must be 5, 6, 7 or 8, got ${dataBits}`);
  const parity = options.parity ?? 'none';
  if (!PARITIES.includes(parity)) {
    throw new Error(`serial port ${path}: parity must be one of ${PARITIES.join(', ')}, got ${JSON.stringify(parity)}`);
  }
  const stopBits = options.stopBits ?? 1;
  if (![1, 1.5, 2].includes(stopBits))
    throw new Error(`serial port ${path}: stop bits must be 1, 1.5 or 2, got ${stopBits}`);
  const port = new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false });
  await new Promise<void>((resolve, reject) => {
    port.open((err) => (err ? reject(explainOpenError(path, err)) : resolve()));
  });
  return port as unknown as SerialLine;
}

/** Closes a line opened by openSerialPort (or destroys any other stream); resolves when it is closed. */
export async function closeSerialPort(line: Duplex): Promise<void> {
  if (line.destroyed) return;
  await new Promise<void>((resolve) => {
    line.once('close', () => resolve());
    line.destroy();
  });
}

/** Turns the bindings' open errors into sentences that say what to do. */
export function explainOpenError(path: string, err: Error & { code?: string }): Error {
  const text = `${err.code ?? ''} ${err.message}`;
  let message: string;
  if (/ENOENT|No such file or directory/i.test(text)) {
    message = `no such serial device ${path}: check the cable and \`ls /dev/serial/by-id\``;
  } else if (/EACCES|Permission denied/i.test(text)) {
    message =
      `permission denied opening ${path}: add the user to the dialout group ` +
      '(`sudo usermod -aG dialout $USER`, then log in again)';
  } else if (/EBUSY|EAGAIN|Cannot lock port|Resource temporarily unavailable|busy/i.test(text)) {
    message = `serial device ${path} is in use by another program (check with \`fuser ${path}\`): stop it or use another port`;
  } else if (/ENOTTY|Inappropriate ioctl/i.test(text)) {
    message = `${path} is not a serial device (check the path: \`ls /dev/serial/by-id\`)`;
  } else {
    message = `could not open serial device ${path}: ${err.message}`;
  }
  const out = new Error(message, { cause: err });
  return out;
}

/** A serial device found on this machine. */
export interface SerialPortInfo {
  readonly path: string;
  /** The stable /dev/serial/by-id/… name, when known. */
  readonly byId?: string;
  readonly manufacturer?: string;
  readonly serialNumber?: string;
  readonly vendorId?: string;
  readonly productId?: string;
}

/** What listSerialPorts found. */
export interface SerialPortList {
  readonly ports: SerialPortInfo[];
  /** Set when the list may be incomplete, saying why (no udevadm in a container, …). */
  readonly reason?: string;
}

/**
 * Lists serial devices. serialport's list needs `udevadm` (missing in most containers); without it this falls back to
 * the symlinks in /dev/serial/by-id and says so in `reason`; when that finds nothing either, it returns no ports and
 * the reason, never an error. `list` and `byIdDir` are for tests.
 */
export async function listSerialPorts(
  options: { list?: () => Promise<SerialPortInfo[]>; byIdDir?: string } = {},
): Promise<SerialPortList> {
  const list = options.list ?? defaultList;
  try {
    return { ports: await list() };
  } catch (err) {
    const e = err as Error & { code?: string };
    const cause = /udevadm/.test(`${e.message} ${e.code ?? ''}`)
      ? 'udevadm is not available (common in containers)'
      : `listing serial ports failed (${e.message})`;
    const byId = listById(options.byIdDir ?? '/dev/serial/by-id');
    if (byId.length > 0) return { ports: byId, reason: `${cause}: listed /dev/serial/by-id only` };
    return {
      ports: [],
      reason: `${cause}, so serial ports cannot be listed: give the device path directly, e.g. /dev/ttyUSB0`,
    };
  }
}

async function defaultList(): Promise<SerialPortInfo[]> {
  const ports = await SerialPort.list();
  return ports.map((p) => ({
    path: p.path,
    ...(p.manufacturer === undefined ? {} : { manufacturer: p.manufacturer }),
    ...(p.serialNumber === undefined ? {} : { serialNumber: p.serialNumber }),
    ...(p.vendorId === undefined ? {} : { vendorId: p.vendorId }),
    ...(p.productId === undefined ? {} : { productId: p.productId }),
  }));
}

function listById(dir: string): SerialPortInfo[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  const out: SerialPortInfo[] = [];
  for (const name of names) {
    const byId = join(dir, name);
    try {
      out.push({ path: realpathSync(byId), byId });
    } catch {
      // a dangling link: the device went away while we looked
    }
  }
  return out;
}
