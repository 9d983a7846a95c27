/**
 * mgmc demo — for now the most complete end-to-end path that exists: a key, a signed ledger of simulated readings,
 * verification of the database and of an export, a record proof, encryption to the DSO's key, and a tampered copy
 * that verification catches. The multi-microgrid demo (issue 8) replaces this.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { systemClock } from '../clock.js';
import { decryptWith, encryptTo } from '../identity/ecies.js';
import { generateKeyPair } from '../identity/keys.js';
import { readKeystoreFile, writeKeystoreFile } from '../identity/keystore.js';
import { signerFromPrivateKey } from '../ledger/block.js';
import { openLedgerStore, openWritableLedger } from '../ledger/open.js';
import { buildRecordProof, checkRecordProof } from '../ledger/proof.js';
import { exportJsonl, jsonlSource, storeSource } from '../ledger/sources.js';
import { syntheticReadings } from '../ledger/synthetic.js';
import { verifyChain } from '../ledger/verify.js';
import { EXIT, type Io, PASSPHRASE_ENV, table } from './io.js';
import { describeReport } from './ledger.js';

export interface DemoOptions {
  readonly dir: string;
  readonly readings: number;
}

export async function demo(io: Io, options: DemoOptions): Promise<number> {
  const dir = resolve(options.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'keys'), { recursive: true });
  const passphrase = io.env[PASSPHRASE_ENV] || 'demo passphrase - not for real keys';
  const step = (text: string) => io.out(`\n== ${text}`);

  step('1. identity: a secp256k1 key in a Web3 Secret Storage v3 keystore (geth scrypt parameters)');
  const keystorePath = join(dir, 'keys', 'mgmc.json');
  const mgmcKey = generateKeyPair();
  await writeKeystoreFile(keystorePath, mgmcKey.privateKey, passphrase);
  const unlocked = await readKeystoreFile(keystorePath, passphrase);
  io.out(`keystore ${keystorePath} (mode 0600)\nMGMC address ${unlocked.address}`);

  step(`2. ledger: ${options.readings} simulated readings appended, sealed every 1000 records and signed`);
  const dbPath = join(dir, 'mgmc.db');
  const clock = systemClock();
  const { store, ledger } = openWritableLedger({
    path: dbPath,
    signer: signerFromPrivateKey(unlocked.privateKey, unlocked.address),
    clock,
    chainId: 1337,
    sealEveryRecords: 1000,
    sealEverySeconds: 10,
  });
  const started = performance.now();
  for (const batch of syntheticReadings(options.readings, clock.now(), 500)) ledger.append(batch);
  ledger.stop();
  const seconds = (performance.now() - started) / 1000;
  io.out(
    `${ledger.lastSeq} records in ${ledger.sealedHeight} blocks, ${Math.round(ledger.lastSeq / seconds)} readings/s`,
  );

  step('3. verify the chain in the database');
  let t = performance.now();
  const report = verifyChain(storeSource(store));
  io.out(
    `${describeReport(report, dbPath)}\n(${Math.round(report.blocks / ((performance.now() - t) / 1000))} blocks/s)`,
  );

  step('4. export for the DSO and auditors (JSONL), verify the export without the database');
  const exportPath = join(dir, 'ledger.jsonl');
  await exportJsonl(store, exportPath);
  const exportReport = verifyChain(jsonlSource(exportPath));
  io.out(describeReport(exportReport, exportPath));

  step('5. prove one record to a third party (RFC 9162 inclusion proof + signed header)');
  const seq = Math.max(1, Math.floor(ledger.lastSeq / 2));
  const proof = buildRecordProof(store, seq);
  const proofPath = join(dir, `proof-${seq}.json`);
  writeFileSync(proofPath, `${JSON.stringify(proof, null, 2)}\n`);
  const proofCheck = checkRecordProof(JSON.parse(readFileSync(proofPath, 'utf8')), unlocked.address);
  io.out(`${proofPath}: ${proofCheck.ok ? 'ok' : 'FAILED'} — ${proofCheck.detail} (${proof.path.length} hashes)`);
  store.close();

  step('6. encrypt an adjustment to the MGMC key as the DSO would (ECIES secp256k1 + HKDF + AES-256-GCM)');
  const dso = generateKeyPair();
  const envelope = encryptTo(mgmcKey.publicKey, new TextEncoder().encode('{"cap":{"importW":40000}}'), {
    sender: dso.address,
  });
  const plain = new TextDecoder().decode(decryptWith(unlocked.privateKey, envelope));
  io.out(`DSO ${dso.address} -> MGMC: ${envelope.ct.slice(0, 34)}… decrypts to ${plain}`);

  step('7. tamper with one byte of a copy of the database file and verify again');
  const tamperedPath = join(dir, 'tampered.db');
  copyFileSync(dbPath, tamperedPath);
  const flipped = flipRecordDigit(tamperedPath);
  const tamperedStore = openLedgerStore(tamperedPath, { readonly: true });
  t = performance.now();
  const tampered = verifyChain(storeSource(tamperedStore));
  tamperedStore.close();
  io.out(`changed byte at file offset ${flipped}\n${describeReport(tampered, tamperedPath)}`);

  io.out('\n== summary');
  io.out(
    table(
      ['check', 'result'],
      [
        ['ledger database', report.ok ? `ok (${report.blocks} blocks)` : 'FAILED'],
        ['JSONL export', exportReport.ok ? 'ok' : 'FAILED'],
        ['record proof', proofCheck.ok ? 'ok' : 'FAILED'],
        ['ECIES round trip', plain.includes('importW') ? 'ok' : 'FAILED'],
        [
          'tampered copy',
          tampered.ok ? 'NOT DETECTED' : `detected at block ${tampered.problem?.height} (${tampered.problem?.kind})`,
        ],
      ],
    ),
  );
  io.out(`\ntry it yourself: node dist/agent/cli.js ledger verify --db ${dbPath}`);
  const allGood = report.ok && exportReport.ok && proofCheck.ok && !tampered.ok;
  return allGood ? EXIT.ok : EXIT.failed;
}

/** Changes one digit inside a reading's value in the database file: a one-byte edit that SQLite still reads. */
function flipRecordDigit(path: string): number {
  // WAL content is checkpointed into the main file when the writer closes, so the bytes are in `path`.
  const bytes = readFileSync(path);
  // Canonical key order puts "value" last in a reading's body, so the byte before `},"seq":` is its last digit.
  const marker = Buffer.from('},"seq":');
  let found = bytes.indexOf(marker, Math.floor(bytes.length / 2));
  while (found !== -1 && !isDigit(bytes[found - 1])) found = bytes.indexOf(marker, found + 1);
  if (found === -1) throw new Error('no reading found in the second half of the database file to tamper with');
  const digit = found - 1;
  const old = bytes[digit] as number;
  bytes[digit] = old === 0x39 ? 0x30 : old + 1;
  writeFileSync(path, bytes);
  return digit;
}

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x30 && byte <= 0x39;
}
