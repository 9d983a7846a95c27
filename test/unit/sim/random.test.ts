import { describe, expect, it } from 'vitest';
import { deriveSeed, hashName, mulberry32, normalAt, OuSeries, ouStep, Rng, seedToU32 } from '../../../sim/random.js';

describe('Rng', () => {
  it('gives the same sequence for the same seed and a different one for another seed', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xa = Array.from({ length: 20 }, () => a.next());
    const xb = Array.from({ length: 20 }, () => b.next());
    const xc = Array.from({ length: 20 }, () => c.next());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
    for (const x of xa) expect(x >= 0 && x < 1).toBe(true);
  });

  it('matches the mulberry32 function it is built on', () => {
    const f = mulberry32(7);
    const r = new Rng(7);
    for (let i = 0; i < 10; i++) expect(r.next()).toBe(f());
  });

  it('forks by name, independently of the draws made before', () => {
    const a = new Rng(5);
    const b = new Rng(5);
    for (let i = 0; i < 17; i++) b.next();
    expect(a.fork('pv').next()).toBe(b.fork('pv').next());
    expect(a.fork('pv').next()).not.toBe(a.fork('load').next());
    expect(a.fork('pv').seed).toBe(deriveSeed(5, 'pv'));
  });

  it('draws normals with the right mean and spread', () => {
    const r = new Rng(9);
    const n = 20_000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal(10, 2);
      sum += z;
      sq += z * z;
    }
    const mean = sum / n;
    expect(mean).toBeCloseTo(10, 1);
    expect(Math.sqrt(sq / n - mean * mean)).toBeCloseTo(2, 1);
  });

  it('draws integers within both bounds', () => {
    const r = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(r.int(3, 6));
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });
});

describe('seeds', () => {
  it('derives different seeds for different names and keeps high bits of large seeds', () => {
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(1, 'b'));
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(2, 'a'));
    expect(seedToU32(2 ** 40)).not.toBe(seedToU32(0));
    expect(seedToU32(-1)).not.toBe(seedToU32(1));
    expect(() => seedToU32(1.5)).toThrow(/safe integer/);
  });

  it('hashes names with FNV-1a', () => {
    // Published FNV-1a 32-bit test vectors.
    expect(hashName('')).toBe(0x811c9dc5);
    expect(hashName('a')).toBe(0xe40c292c);
    expect(hashName('foobar')).toBe(0xbf9cf968);
  });

  it('keys normals by index', () => {
    expect(normalAt(3, 100)).toBe(normalAt(3, 100));
    expect(normalAt(3, 100)).not.toBe(normalAt(3, 101));
    expect(normalAt(3, 2 ** 33)).not.toBe(normalAt(3, 0));
  });
});

describe('OuSeries', () => {
  const options = { seed: 11, originMs: 0, knotMs: 10_000, tauS: 300, sd: 0.5, mean: 2 };

  it('is a function of time: the order of look-ups does not matter', () => {
    const forward = new OuSeries(options);
    const times = Array.from({ length: 3000 }, (_, i) => i * 3_700);
    const a = times.map((t) => forward.at(t));
    const backward = new OuSeries(options);
    const b = [...times]
      .reverse()
      .map((t) => backward.at(t))
      .reverse();
    const jumpy = new OuSeries(options);
    jumpy.at(times.at(-1)!);
    const c = times.map((t) => jumpy.at(t));
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('interpolates linearly between knots', () => {
    const s = new OuSeries(options);
    const k1 = s.at(50_000);
    const k2 = s.at(60_000);
    expect(s.at(52_500)).toBeCloseTo(k1 + (k2 - k1) * 0.25, 12);
  });

  it('has the stationary mean, spread and correlation of an Ornstein-Uhlenbeck process', () => {
    const s = new OuSeries({ ...options, tauS: 60 });
    const n = 40_000;
    const xs = Array.from({ length: n }, (_, i) => s.at(i * 10_000));
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    let cov = 0;
    for (let i = 0; i + 6 < n; i++) cov += (xs[i]! - mean) * (xs[i + 6]! - mean);
    cov /= n - 6;
    expect(mean).toBeCloseTo(2, 1);
    expect(Math.sqrt(variance)).toBeCloseTo(0.5, 1);
    // 60 s apart with tau 60 s: correlation e^-1.
    expect(cov / variance).toBeCloseTo(Math.exp(-1), 1);
  });

  it('steps exactly: no change over no time, the stationary law after a long time', () => {
    expect(ouStep(3, 1, 0.5, 0, 60, 2)).toBe(3);
    expect(ouStep(3, 1, 0.5, 1e9, 60, 2)).toBeCloseTo(2, 12);
  });

  it('is constant at the mean when sd is 0', () => {
    const s = new OuSeries({ ...options, sd: 0 });
    expect(s.at(123_456)).toBe(2);
  });
});
