/**
 * The series selectors of a PromQL expression: metric names and their label matchers. Enough of
 * PromQL for dashboards and alert rules (selectors, functions, aggregations with by/without,
 * vector matching, ranges, offsets, Grafana's $variables), not a full parser.
 */
export interface LabelMatcher {
  name: string;
  op: string;
  value: string;
}

export interface Selector {
  metric: string;
  labels: LabelMatcher[];
}

/** Keywords that look like identifiers but are not series. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'by',
  'without',
  'on',
  'ignoring',
]);

const IDENT = '[a-zA-Z_:][a-zA-Z0-9_:]*';

function labelMatchers(body: string): LabelMatcher[] {
  const out: LabelMatcher[] = [];
  for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
    out.push({ name: m[1]!, op: m[2]!, value: m[3]! });
  }
  return out;
}

export function selectorsOf(expr: string): Selector[] {
  const found: Selector[] = [];
  // Grafana's interval variables stand where a duration does.
  let rest = expr.replace(/\$__(rate_)?interval|\$__range/g, '5m');
  // name{matchers} and bare {matchers}; blanked out once read.
  rest = rest.replace(
    new RegExp(`(${IDENT})?\\s*\\{([^}]*)\\}`, 'g'),
    (_all, name: string | undefined, body: string) => {
      const labels = labelMatchers(body);
      const metric = name ?? labels.find((l) => l.name === '__name__' && l.op === '=')?.value ?? '';
      if (metric !== '' && !KEYWORDS.has(metric)) found.push({ metric, labels });
      else if (name !== undefined) return `${name} `;
      return ' ';
    },
  );
  rest = rest
    // by (...), without (...), on (...), ignoring (...), group_left (...): label lists.
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ');
  for (const m of rest.matchAll(new RegExp(`(?<![\\w.$])(${IDENT})(\\s*\\()?`, 'g'))) {
    const [, name, call] = m;
    // Followed by '(' it is a function or an aggregation; numbers and durations never match IDENT.
    if (call || KEYWORDS.has(name!.toLowerCase())) continue;
    found.push({ metric: name!, labels: [] });
  }
  return found;
}
