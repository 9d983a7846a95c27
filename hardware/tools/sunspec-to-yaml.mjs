#!/usr/bin/env node
/**
 * Converts SunSpec model definitions (the JSON files of https://github.com/sunspec/models, folder json/) into our
 * device-profile YAML (hardware/profiles/sunspec-<model>.yaml). This is how the shipped SunSpec profiles were made;
 * the YAML files are the product and are committed, this script documents and reproduces them.
 *
 *   node hardware/tools/sunspec-to-yaml.mjs <dir with model_<n>.json> [out dir] [--ref <commit or tag>]
 *
 * Point addresses are offsets from the model's ID register (ID is 0, L is 1, the first point is 2): the running sum
 * of the point sizes in file order, exactly as the SunSpec JSON lays them out. Only the fixed block of a model is
 * converted (repeating groups are skipped); pad points are kept so the last point ends at L + 2. Writable points
 * (access RW) get `access: rw`, a write range in engineering units, and for the SunSpec 123/124 controls the point
 * holding their revert timeout and the point that enables them (see SETTINGS below).
 *
 * Plain Node ESM; the only dependency is `yaml` (used to check that every emitted file parses back to the same data).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/** Models we ship, with the profile metadata the JSON doesn't carry. */
const MODELS = {
  1: { class: 'common', name: 'SunSpec common block (model 1)' },
  101: { class: 'pv-inverter', name: 'SunSpec inverter, single phase, integer + scale factors (model 101)' },
  102: { class: 'pv-inverter', name: 'SunSpec inverter, split phase, integer + scale factors (model 102)' },
  103: { class: 'pv-inverter', name: 'SunSpec inverter, three phase, integer + scale factors (model 103)' },
  120: { class: 'pv-inverter', name: 'SunSpec inverter nameplate ratings (model 120)' },
  121: { class: 'pv-inverter', name: 'SunSpec inverter basic settings (model 121)' },
  123: { class: 'pv-inverter', name: 'SunSpec inverter immediate controls (model 123)' },
  124: { class: 'battery', name: 'SunSpec basic storage controls (model 124)' },
  201: { class: 'meter', name: 'SunSpec AC meter, single phase AN or AB, integer + scale factors (model 201)' },
  202: { class: 'meter', name: 'SunSpec AC meter, split single phase ABN, integer + scale factors (model 202)' },
  203: { class: 'meter', name: 'SunSpec AC meter, three phase wye ABCN, integer + scale factors (model 203)' },
  204: { class: 'meter', name: 'SunSpec AC meter, three phase delta ABC, integer + scale factors (model 204)' },
};

// Write ranges in engineering units. Power/VA/var settings get a generous plant-size cap (10 MW): the device's own
// limit is its nameplate (model 120), which the writer checks separately; the range only stops absurd values.
const P_MAX = 10_000_000;
const TIMES = { min: 0, max: 65534 }; // u16 seconds; 0xFFFF is the "not implemented" sentinel
const PCT = { min: 0, max: 100 };
const SIGNED_PCT = { min: -100, max: 100 };
const PF = { min: -1, max: 1 };
const FLAG = { min: 0, max: 1 };

/** Per-model settings for writable points: range, revertTimeout, enable, extra description. */
const SETTINGS = {
  1: { DA: { range: { min: 1, max: 247 } } },
  121: {
    WMax: { range: { min: 0, max: P_MAX } },
    VRef: { range: { min: 0, max: 1000 } },
    VRefOfs: { range: { min: -100, max: 100 } },
    VMax: { range: { min: 0, max: 1000 } },
    VMin: { range: { min: 0, max: 1000 } },
    VAMax: { range: { min: 0, max: P_MAX } },
    VArMaxQ1: { range: { min: -P_MAX, max: P_MAX } },
    VArMaxQ2: { range: { min: -P_MAX, max: P_MAX } },
    VArMaxQ3: { range: { min: -P_MAX, max: P_MAX } },
    VArMaxQ4: { range: { min: -P_MAX, max: P_MAX } },
    WGra: { range: PCT },
    PFMinQ1: { range: PF },
    PFMinQ2: { range: PF },
    PFMinQ3: { range: PF },
    PFMinQ4: { range: PF },
    VArAct: { range: { min: 1, max: 2 } },
    ClcTotVA: { range: { min: 1, max: 2 } },
    MaxRmpRte: { range: PCT },
    ECPNomHz: { range: { min: 45, max: 65 } },
    ConnPh: { range: { min: 1, max: 3 } },
  },
  123: {
    Conn_WinTms: { range: TIMES },
    Conn_RvrtTms: { range: TIMES },
    Conn: { range: FLAG, revertTimeout: 'Conn_RvrtTms' },
    WMaxLimPct: { range: PCT, revertTimeout: 'WMaxLimPct_RvrtTms', enable: 'WMaxLim_Ena' },
    WMaxLimPct_WinTms: { range: TIMES },
    WMaxLimPct_RvrtTms: { range: TIMES },
    WMaxLimPct_RmpTms: { range: TIMES },
    WMaxLim_Ena: { range: FLAG },
    OutPFSet: { range: PF, revertTimeout: 'OutPFSet_RvrtTms', enable: 'OutPFSet_Ena' },
    OutPFSet_WinTms: { range: TIMES },
    OutPFSet_RvrtTms: { range: TIMES },
    OutPFSet_RmpTms: { range: TIMES },
    OutPFSet_Ena: { range: FLAG },
    VArWMaxPct: { range: SIGNED_PCT, revertTimeout: 'VArPct_RvrtTms', enable: 'VArPct_Ena' },
    VArMaxPct: { range: SIGNED_PCT, revertTimeout: 'VArPct_RvrtTms', enable: 'VArPct_Ena' },
    VArAvalPct: { range: SIGNED_PCT, revertTimeout: 'VArPct_RvrtTms', enable: 'VArPct_Ena' },
    VArPct_WinTms: { range: TIMES },
    VArPct_RvrtTms: { range: TIMES },
    VArPct_RmpTms: { range: TIMES },
    VArPct_Mod: { range: { min: 0, max: 3 } },
    VArPct_Ena: { range: FLAG },
  },
  124: {
    WChaMax: { range: { min: 0, max: P_MAX } },
    WChaGra: { range: PCT },
    WDisChaGra: { range: PCT },
    StorCtl_Mod: { range: { min: 0, max: 3 } },
    VAChaMax: { range: { min: 0, max: P_MAX } },
    MinRsvPct: { range: PCT },
    OutWRte: {
      range: SIGNED_PCT,
      revertTimeout: 'InOutWRte_RvrtTms',
      note: 'in force while StorCtl_Mod bit 1 (DISCHARGE) is set',
    },
    InWRte: {
      range: SIGNED_PCT,
      revertTimeout: 'InOutWRte_RvrtTms',
      note: 'in force while StorCtl_Mod bit 0 (CHARGE) is set',
    },
    InOutWRte_WinTms: { range: TIMES },
    InOutWRte_RvrtTms: { range: TIMES },
    InOutWRte_RmpTms: { range: TIMES },
    ChaGriSet: { range: FLAG },
  },
};

/** Missing descriptions in the JSON (model 124 ChaGriSet has neither label nor desc). */
const DESCRIPTIONS = { 124: { ChaGriSet: 'Whether storage may charge from the grid' } };

const TYPES = {
  uint16: 'u16',
  int16: 's16',
  uint32: 'u32',
  int32: 's32',
  uint64: 'u64',
  int64: 's64',
  acc16: 'acc16',
  acc32: 'acc32',
  acc64: 'acc64',
  float32: 'f32',
  float64: 'f64',
  string: 'string',
  sunssf: 'sunssf',
  enum16: 'enum16',
  bitfield16: 'bitfield16',
  bitfield32: 'bitfield32',
  pad: 'pad',
};

/** SunSpec unit text -> our unit and, for relative units, what the percentage is of. */
function mapUnit(units) {
  if (units === undefined) return {};
  const u = units.trim();
  const simple = { A: 'A', V: 'V', W: 'W', Hz: 'Hz', VA: 'VA', var: 'var', Wh: 'Wh', VAh: 'VAh', varh: 'varh', C: 'C' };
  if (simple[u]) return { unit: simple[u] };
  if (u === 'Pct') return { unit: '%' };
  if (u === 'Secs') return { unit: 's' };
  if (u === 'AH') return { unit: 'Ah' };
  if (u === 'cos()') return {}; // power factor as cos(phi), unitless
  let m = /^% (\w+)\/sec$/.exec(u);
  if (m) return { unit: '%/s', of: `% of ${m[1]} per second` };
  m = /^% (\w+)$/.exec(u);
  if (m) return { unit: '%', of: `% of ${m[1]}` };
  throw new Error(`unknown SunSpec unit ${JSON.stringify(units)}`);
}

function describe(model, p, unitInfo, settings) {
  const parts = [];
  const label = p.label?.trim();
  let text = DESCRIPTIONS[model]?.[p.name] ?? p.desc?.trim() ?? (label !== p.name ? label : undefined);
  if (text && p.desc && label && label !== p.name && !text.toLowerCase().includes(label.toLowerCase())) {
    text = `${label}: ${text}`;
  }
  if (text) parts.push(text.replace(/\.$/, ''));
  if (unitInfo.of) parts.push(unitInfo.of);
  if (p.symbols?.length) {
    const bit = p.type.startsWith('bitfield');
    parts.push(p.symbols.map((s) => (bit ? `bit${s.value}=${s.name}` : `${s.value}=${s.name}`)).join(' '));
  }
  if (settings?.note) parts.push(settings.note);
  return parts.length ? parts.join('; ') : undefined;
}

function convert(model, json, ref) {
  const meta = MODELS[model];
  const g = json.group;
  if (json.id !== model) throw new Error(`model_${model}.json has id ${json.id}`);
  const points = [];
  let offset = 0;
  for (const p of g.points) {
    const type = TYPES[p.type];
    if (!type) throw new Error(`model ${model} ${p.name}: unknown type ${p.type}`);
    const unitInfo = mapUnit(p.units);
    const settings = SETTINGS[model]?.[p.name];
    const rw = p.access === 'RW';
    if (rw && !settings?.range) throw new Error(`model ${model} ${p.name}: writable point without a range`);
    if (!rw && settings) throw new Error(`model ${model} ${p.name}: settings for a read-only point`);
    const out = { name: p.name, address: offset, type };
    if (type === 'string' || type === 'pad') out.size = p.size;
    if (p.sf) out.sf = p.sf;
    if (unitInfo.unit) out.unit = unitInfo.unit;
    if (rw) {
      out.access = 'rw';
      out.range = settings.range;
      if (settings.revertTimeout) out.revertTimeout = settings.revertTimeout;
      if (settings.enable) out.enable = settings.enable;
    }
    if (type !== 'sunssf' && type !== 'pad' && p.name !== 'ID' && p.name !== 'L') {
      const d = describe(model, p, unitInfo, settings);
      if (d) out.description = d;
    }
    points.push(out);
    offset += p.size;
  }
  const length = offset - 2;
  const idPoint = g.points[0];
  if (idPoint.name !== 'ID' || idPoint.value !== model)
    throw new Error(`model ${model}: first point is not ID=${model}`);
  const profile = {
    id: `sunspec-${model}`,
    name: meta.name,
    class: meta.class,
    source: `SunSpec Information Model Reference, model ${model} "${g.label.trim()}" (github.com/sunspec/models json/model_${model}.json${ref ? ` at ${ref}` : ''})`,
    addressing: 'sunspec-model',
    sunspec: { model, length },
    transport: 'any',
    points,
  };
  return { profile, header: headerFor(model, g, length) };
}

function headerFor(model, g, length) {
  const lines = [
    `# SunSpec model ${model} (${g.name}): ${g.desc?.trim() ?? g.label.trim()}.`,
    `# Generated by hardware/tools/sunspec-to-yaml.mjs from sunspec/models json/model_${model}.json; edit the script,`,
    '# not this file. Addresses are offsets from the model ID register (ID 0, L 1, first point 2); the fixed block is',
    `# ${length} registers after ID and L${g.groups?.length ? `; repeating groups (${g.groups.map((x) => x.name).join(', ')}) are not included` : ''}.`,
    '# SunSpec "not implemented" sentinels apply to every point (0xFFFF, 0x8000, 0 for accumulators, ...).',
  ];
  return `${lines.join('\n')}\n`;
}

// ---- YAML emission: one flow mapping per point, like the hand-written profiles ----

function scalar(v) {
  if (typeof v === 'number') return String(v);
  if (/^[A-Za-z][A-Za-z0-9_]*$/.test(v) && !/^(true|false|null|yes|no|on|off|y|n)$/i.test(v)) return v;
  return JSON.stringify(v);
}

function flow(obj) {
  const parts = Object.entries(obj).map(([k, v]) => `${k}: ${typeof v === 'object' ? flow(v) : scalar(v)}`);
  return `{ ${parts.join(', ')} }`;
}

function emit({ profile, header }) {
  const out = [header];
  out.push(`id: ${profile.id}`);
  out.push(`name: ${scalar(profile.name)}`);
  out.push(`class: ${profile.class}`);
  out.push(`source: ${scalar(profile.source)}`);
  out.push(`addressing: ${profile.addressing}`);
  out.push(`sunspec: ${flow(profile.sunspec)}`);
  out.push(`transport: ${profile.transport}`);
  out.push('points:');
  for (const p of profile.points) out.push(`  - ${flow(p)}`);
  const text = `${out.join('\n')}\n`;
  // Self-check: the text parses back to exactly the profile.
  const back = parse(text);
  if (JSON.stringify(back) !== JSON.stringify(profile)) throw new Error(`${profile.id}: YAML does not round-trip`);
  return text;
}

function main(argv) {
  const args = [...argv];
  let ref;
  const i = args.indexOf('--ref');
  if (i >= 0) {
    ref = args[i + 1];
    args.splice(i, 2);
  }
  const [modelsDir, outDir = 'hardware/profiles'] = args;
  if (!modelsDir) {
    console.error('usage: sunspec-to-yaml.mjs <dir with model_<n>.json> [out dir] [--ref <commit>]');
    process.exit(2);
  }
  for (const model of Object.keys(MODELS).map(Number)) {
    const json = JSON.parse(readFileSync(join(modelsDir, `model_${model}.json`), 'utf8'));
    const converted = convert(model, json, ref);
    const file = join(outDir, `${converted.profile.id}.yaml`);
    writeFileSync(file, emit(converted));
    const last = converted.profile.points.at(-1);
    console.log(
      `${file}: ${converted.profile.points.length} points, L=${converted.profile.sunspec.length}, last ${last.name}@${last.address}`,
    );
  }
}

main(process.argv.slice(2));
