/**
 * CRC-16/CCITT-FALSE (also catalogued as CRC-16/IBM-3740), the check value of every firmware-bridge frame.
 *
 * Parameters (Rocksoft model): width 16, poly 0x1021, init 0xFFFF, refin false, refout false, xorout 0x0000,
 * check 0x29B1 (the CRC of the ASCII bytes "123456789"), residue 0x0000. Frames carry it big-endian (high byte
 * first). Chosen over CRC-16/MODBUS because it is not bit-reflected, so the C reference is a plain MSB-first loop and
 * the per-byte table is the one most MCU vendor libraries already ship.
 */

/** The standard check value: crc16('123456789') === CRC16_CHECK. */
export const CRC16_CHECK = 0x29b1;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/**
 * CRC-16/CCITT-FALSE of `bytes` as an integer 0..0xFFFF. `init` continues a running CRC over split input:
 * crc16(b, crc16(a)) === crc16(a ‖ b). Vector: crc16(utf8("123456789")) === 0x29B1; crc16(empty) === 0xFFFF.
 */
export function crc16(bytes: Uint8Array, init = 0xffff): number {
  let crc = init & 0xffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number);
  }
  return crc;
}
