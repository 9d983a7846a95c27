/**
 * A LinearProgram as CPLEX LP text that glpsol (`glpsol --lp`) and HiGHS read as the same model, so anyone can
 * re-solve an exported schedule with another solver. Written to the subset both readers accept (checked with glpsol
 * 5.0 and HiGHS 1.15):
 * - glpsol refuses a constant in the objective: the offset becomes a column fixed at 1 whose cost is the offset.
 * - glpsol refuses `lower <= expr <= upper` rows: a range becomes two rows, `name >= lower` and `name_hi <= upper`.
 * - glpsol refuses `>= -inf` and needs at least one row: a free row is left out (it constrains nothing) and a
 *   program without rows gets one `0 x >= 0`.
 * - Bounds are always written in full (`0 <= x <= u`): a lone negative upper bound means different things to
 *   different readers.
 * Numbers are JavaScript's shortest round-trip form (`1e-7`, `1.5e+21`), which both read exactly; lines are wrapped
 * near 100 characters (neither reader needs it, CPLEX itself stops at 560).
 */
import { cplexNameProblem, type LinearProgram, LpError, lpShapeProblem } from './lp.js';

const WIDTH = 100;
const NAME_LIMIT = 255;

/** CPLEX LP text of `lp`; throws LpError for a program or a name no LP reader can take. */
export function toCplexLp(lp: LinearProgram): string {
  const shape = lpShapeProblem(lp);
  if (shape !== undefined) throw new LpError(`cannot write ${shape}`);
  const used = new Set<string>();
  for (const [j, name] of lp.colNames.entries()) checkName(lp, name, `column #${j}`, used);
  for (const [i, name] of lp.rowNames.entries()) checkName(lp, name, `row #${i}`, used);
  const fresh = (base: string): string => {
    let name = base.slice(0, NAME_LIMIT);
    for (let k = 2; used.has(name); k++) name = `${base.slice(0, NAME_LIMIT - String(k).length)}${k}`;
    used.add(name);
    return name;
  };

  const colNames = [...lp.colNames];
  const colLower = [...lp.colLower];
  const colUpper = [...lp.colUpper];
  const colCost = [...lp.colCost];
  const integer = [...lp.integrality].map((v) => v !== 0);
  const notes: string[] = [];
  if (lp.offset !== 0 || colNames.length === 0) {
    const name = fresh('__offset');
    colNames.push(name);
    colLower.push(1);
    colUpper.push(1);
    colCost.push(lp.offset);
    integer.push(false);
    notes.push(
      `${name} is fixed at 1: its cost is the objective's constant ${num(lp.offset)} (glpsol reads no constant)`,
    );
  }

  const out: string[] = [`\\* ${comment(lp.name)} *\\`];
  for (const note of notes) out.push(`\\* ${comment(note)} *\\`);
  out.push('Minimize');
  out.push(
    ...wrap(
      ' obj:',
      colNames.map((name, j) => term(colCost[j] ?? 0, name, j === 0)),
    ),
  );

  out.push('Subject To');
  let written = 0;
  for (let i = 0; i < lp.rowNames.length; i++) {
    const name = lp.rowNames[i] ?? '';
    const lower = lp.rowLower[i] ?? 0;
    const upper = lp.rowUpper[i] ?? 0;
    const start = lp.rowStart[i] ?? 0;
    const end = lp.rowStart[i + 1] ?? 0;
    const terms: string[] = [];
    for (let k = start; k < end; k++) {
      terms.push(term(lp.value[k] ?? 0, colNames[lp.index[k] ?? 0] ?? '', k === start));
    }
    // An empty row still has to name a variable in this format.
    if (terms.length === 0) terms.push(term(0, colNames[0] ?? '', true));
    const lowerFinite = lower !== Number.NEGATIVE_INFINITY;
    const upperFinite = upper !== Number.POSITIVE_INFINITY;
    if (!lowerFinite && !upperFinite) {
      out.push(`\\ row ${name} has no bounds and is left out`);
      continue;
    }
    if (lowerFinite && upperFinite && lower === upper) {
      out.push(...wrap(` ${name}:`, [...terms, `= ${num(lower)}`]));
    } else {
      if (lowerFinite) out.push(...wrap(` ${name}:`, [...terms, `>= ${num(lower)}`]));
      if (upperFinite) {
        const upperName = lowerFinite ? fresh(`${name}_hi`) : name;
        out.push(...wrap(` ${upperName}:`, [...terms, `<= ${num(upper)}`]));
      }
    }
    written++;
  }
  if (written === 0) out.push(...wrap(` ${fresh('__norows')}:`, [term(0, colNames[0] ?? '', true), '>= 0']));

  out.push('Bounds');
  const binaries: string[] = [];
  const generals: string[] = [];
  for (let j = 0; j < colNames.length; j++) {
    const name = colNames[j] ?? '';
    const lower = colLower[j] ?? 0;
    const upper = colUpper[j] ?? 0;
    if (integer[j] && lower === 0 && upper === 1) {
      binaries.push(name);
      continue;
    }
    if (integer[j]) generals.push(name);
    const bound = boundLine(name, lower, upper);
    if (bound !== undefined) out.push(bound);
  }
  if (binaries.length > 0) out.push('Binaries', ...wrap('', binaries));
  if (generals.length > 0) out.push('Generals', ...wrap('', generals));
  out.push('End', '');
  return out.join('\n');
}

function boundLine(name: string, lower: number, upper: number): string | undefined {
  const lowerFinite = lower !== Number.NEGATIVE_INFINITY;
  const upperFinite = upper !== Number.POSITIVE_INFINITY;
  if (!lowerFinite && !upperFinite) return ` ${name} free`;
  if (lower === upper) return ` ${name} = ${num(lower)}`;
  if (!upperFinite) return lower === 0 ? undefined : ` ${name} >= ${num(lower)}`;
  return ` ${lowerFinite ? num(lower) : '-inf'} <= ${name} <= ${num(upper)}`;
}

function checkName(lp: LinearProgram, name: string, what: string, used: Set<string>): void {
  const problem = cplexNameProblem(name);
  if (problem !== undefined) {
    throw new LpError(`cannot write LP ${lp.name}: the name ${JSON.stringify(name)} of ${what} ${problem}`);
  }
  used.add(name);
}

/** `2 x`, `- 2 x`, `+ 0 x`: the sign apart from the number, so `-` never sticks to an exponent. */
function term(coef: number, name: string, first: boolean): string {
  const magnitude = `${num(Math.abs(coef))} ${name}`;
  if (coef < 0) return `- ${magnitude}`;
  return first ? magnitude : `+ ${magnitude}`;
}

function num(x: number): string {
  // String() is the shortest text that reads back to the same double; -0 prints as 0.
  return String(x);
}

function comment(text: string): string {
  return text.replace(/\*\\/g, '* \\').replace(/[\r\n]+/g, ' ');
}

/** `head` followed by the pieces, wrapped near WIDTH; continuation lines are indented (never taken for a new row). */
function wrap(head: string, pieces: readonly string[]): string[] {
  const lines: string[] = [];
  let line = head;
  for (const piece of pieces) {
    if (line.length > 0 && line.trim().length > 0 && line.length + 1 + piece.length > WIDTH) {
      lines.push(line);
      line = '   ';
    }
    line = line.length === 0 ? ` ${piece}` : `${line} ${piece}`;
  }
  lines.push(line);
  return lines;
}
