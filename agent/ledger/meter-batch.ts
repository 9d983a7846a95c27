/**
 * Meter-signed reading batches as they sit in the ledger. The meter's signature is kept verbatim together with the
 * exact bytes it signed (`payload`), so anyone can check the numbers back to the meter's own key without trusting
 * the MGMC. The payload layout belongs to the firmware protocol (firmware-bridge/); the ledger only needs to know
 * how each `format` is signed.
 */
import { fromHex } from '../identity/bytes.js';
import { parseAddress } from '../identity/keys.js';
import { recoverAddress, signingDigest } from '../identity/signing.js';
import type { RecordBody } from './records.js';

/** Format id of batches signed as signingDigest('mgmc/meter-batch/v1', 0, payload): meters sign chain-independently. */
export const METER_BATCH_FORMAT_V1 = 'mgmc-meter/v1';
export const METER_BATCH_TAG = 'mgmc/meter-batch/v1';

export function meterBatchDigest(payload: Uint8Array): Uint8Array {
  return signingDigest(METER_BATCH_TAG, 0, payload);
}

/** Returns undefined when the batch's signature is the meter's, or a sentence saying what is wrong. */
export function checkMeterBatch(body: RecordBody): string | undefined {
  if (body.format !== METER_BATCH_FORMAT_V1) {
    return `meter batch format ${JSON.stringify(body.format)} is unknown to this mgmc (known: ${METER_BATCH_FORMAT_V1})`;
  }
  try {
    const meter = parseAddress(body.meter as string, 'meter');
    const signer = recoverAddress(
      meterBatchDigest(fromHex(body.payload as string, 'payload')),
      fromHex(body.sig as string, 'sig', 65),
    );
    return signer === meter ? undefined : `meter batch says meter ${meter} but was signed by ${signer}`;
  } catch (err) {
    return `meter batch signature is malformed: ${(err as Error).message}`;
  }
}
