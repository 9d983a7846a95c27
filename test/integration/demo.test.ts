/**
 * `mgmc demo` from midnight to 11:00 (the morning's trades): the broker, the DSO and three MGMCs with their simulated devices on
 * loopback Modbus TCP and signing meters on ptys. The summary must show every chain verified, the DSO holding every
 * block, trades and costs; the HTML report must hold the charts with their data.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { demo } from '../../agent/commands/demo.js';
import type { Io } from '../../agent/commands/io.js';
import type { DemoReportData } from '../../agent/demo/report-data.js';
import { createInlineSolver } from '../../agent/optimizer/solver.js';
import { socatAvailable } from '../../sim/pty.js';
import { describeIfTool } from './modbus-helpers.js';

describeIfTool(
  'socat',
  'socat',
  socatAvailable(),
)('mgmc demo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mgmc-demo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the system from midnight to 11:00 and reports every chain verified, trades and costs', async () => {
    const out: string[] = [];
    const io: Io = { env: {}, stdin: process.stdin, out: (t) => out.push(t), err: (t) => out.push(t) };
    const reportPath = join(dir, 'out', 'demo-report.html');
    const code = await demo(io, {
      dir: join(dir, 'data'),
      duration: 11,
      from: 0,
      mgmcs: 3,
      seed: 20260622,
      speed: 900,
      report: reportPath,
      json: true,
      // The worker thread's script is compiled JavaScript; under vitest the sources are TypeScript.
      createSolver: createInlineSolver,
    });
    const printed = JSON.parse(out.join('\n')) as { ok: boolean; report: string; summary: DemoReportData };
    const r = printed.summary;
    expect(printed.report).toBe(reportPath);
    expect(r.checks.filter((c) => !c.ok)).toEqual([]);
    expect(code).toBe(0);
    expect(printed.ok).toBe(true);

    // Every chain verified, and the DSO holds every block each MGMC signed.
    expect(r.ledgers).toHaveLength(3);
    for (const l of r.ledgers) {
      expect(l.chainOk).toBe(true);
      expect(l.blocksSigned).toBeGreaterThan(5);
      expect(l.heldByDso).toBe(l.blocksSigned);
      expect(l.records).toBeGreaterThan(l.blocksSigned);
    }
    expect(r.dso.chainOk).toBe(true);
    expect(r.dso.blocksVerified).toBeGreaterThanOrEqual(r.ledgers.reduce((a, l) => a + l.blocksSigned, 0));
    expect(r.dso.blocksRejected).toBe(0);

    // Trades happened at prices inside the DSO's band, and every microgrid's costs were computed.
    const traded = r.market.filter((m) => m.trades > 0);
    expect(traded.length).toBeGreaterThan(0);
    for (const m of traded) {
      expect(m.volumeWh).toBeGreaterThan(0);
      expect(m.priceAvg).toBeGreaterThanOrEqual(m.exportPrice);
      expect(m.priceAvg).toBeLessThanOrEqual(m.importPrice);
    }
    expect(r.microgrids.map((m) => m.name)).toEqual(['offices', 'campus', 'factory']);
    for (const m of r.microgrids) {
      expect(Number.isFinite(m.costBaseline)).toBe(true);
      expect(Number.isFinite(m.costActual)).toBe(true);
      expect(m.costBaseline).not.toBe(0);
      // One sample per 15 minutes over the warm-up hour and the eleven hours.
      expect(m.steps.length).toBeGreaterThanOrEqual(48);
    }
    const sold = r.microgrids.reduce((a, m) => a + m.soldWh, 0);
    const bought = r.microgrids.reduce((a, m) => a + m.boughtWh, 0);
    expect(sold).toBe(bought);
    expect(sold).toBe(r.market.reduce((a, m) => a + m.volumeWh, 0));
    expect(r.feeder.profiles.length).toBeGreaterThanOrEqual(1);
    expect(r.feeder.profiles[0]!.voltagesPu).toHaveLength(33);

    // The report: one self-contained page with the charts and their data.
    const html = readFileSync(reportPath, 'utf8');
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const m of r.microgrids) {
      const chart = new RegExp(`data-chart="schedule"[^>]*data-mgmc="${m.name}"[^>]*data-points="(\\d+)"`).exec(html);
      expect(Number(chart?.[1])).toBe(m.steps.length);
    }
    expect(Number(/data-chart="market"[^>]*data-points="(\d+)"/.exec(html)?.[1])).toBe(r.market.length);
    expect(Number(/data-chart="voltage"[^>]*data-points="(\d+)"/.exec(html)?.[1])).toBe(33);
    expect(Number(/data-chart="ledger"[^>]*data-points="(\d+)"/.exec(html)?.[1])).toBe(3);
  }, 240_000);
});
