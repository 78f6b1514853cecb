/**
 * deploy/grafana's dashboard and deploy/prometheus's alert rules name only series relay-bot
 * exports: the names and label names come from the real registry BotMetrics builds (cli/metrics.ts,
 * with prom-client's process metrics, as `relay-bot start` serves them), the drop reasons and group
 * event kinds from the framework's own lists.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { BotMetrics, GROUP_EVENT_KINDS } from '../../cli/metrics.js';
import { DROP_REASONS } from '../../framework/relay/index.js';
import { selectorsOf, type Selector } from '../support/promql.js';
import { ROOT } from './helpers.js';

/** Labels Prometheus itself attaches to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

interface Exported {
  labels: Map<string, string[]>;
  values: Map<string, readonly string[]>;
}

/** Every series name a scrape can hold (histograms as _bucket/_sum/_count), with its label names. */
async function exportedSeries(): Promise<Exported> {
  const metrics = new BotMetrics();
  const labels = new Map<string, string[]>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const own = [
      ...((metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ??
        []),
    ];
    if (String(m.type) === 'histogram') {
      labels.set(`${m.name}_bucket`, [...own, 'le']);
      labels.set(`${m.name}_sum`, own);
      labels.set(`${m.name}_count`, own);
    } else labels.set(m.name, own);
  }
  const values = new Map<string, readonly string[]>([
    ['reason', DROP_REASONS],
    ['kind', GROUP_EVENT_KINDS],
  ]);
  return { labels, values };
}

/** What is wrong with one selector, or nothing. */
function problemsOf(s: Selector, exported: Exported): string[] {
  const known = exported.labels.get(s.metric);
  if (!known) return [`${s.metric} is not a metric relay-bot exports`];
  const problems: string[] = [];
  for (const l of s.labels) {
    if (![...known, ...TARGET_LABELS].includes(l.name)) problems.push(`${s.metric} has no label ${l.name}`);
    const allowed = exported.values.get(l.name);
    if (allowed && l.op === '=' && !allowed.includes(l.value)) {
      problems.push(`${s.metric}{${l.name}="${l.value}"} is never exported`);
    }
  }
  return problems;
}

interface Dashboard {
  panels: Array<{
    id: number;
    type: string;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    datasource?: { uid: string };
    targets?: Array<{ expr: string; refId: string }>;
  }>;
  templating: { list: Array<{ name: string; definition?: string }> };
}

const dashboardFiles = readdirSync(path.join(ROOT, 'deploy', 'grafana')).filter((f) => f.endsWith('.json'));
const dashboards = dashboardFiles.map((f) => ({
  file: f,
  json: JSON.parse(readFileSync(path.join(ROOT, 'deploy', 'grafana', f), 'utf8')) as Dashboard,
}));
const ruleFiles = readdirSync(path.join(ROOT, 'deploy', 'prometheus')).filter((f) => /\.ya?ml$/.test(f));
interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = ruleFiles.flatMap((f) => {
  const doc = YAML.parse(readFileSync(path.join(ROOT, 'deploy', 'prometheus', f), 'utf8')) as {
    groups: Array<{ name: string; rules: Rule[] }>;
  };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ file: f, group: g.name, ...r })));
});

function dashboardExprs(): Array<{ where: string; expr: string }> {
  return dashboards.flatMap(({ file, json }) => [
    ...json.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `${file} "${p.title}" ${t.refId}`, expr: t.expr })),
    ),
    ...json.templating.list
      .filter((v) => v.definition)
      .map((v) => ({ where: `${file} $${v.name}`, expr: /label_values\(([^,)]+)/.exec(v.definition!)![1]! })),
  ]);
}

let exported: Exported;
beforeAll(async () => {
  exported = await exportedSeries();
});

describe('the PromQL reader', () => {
  test('finds series names and matchers, and skips functions, keywords, ranges and label lists', () => {
    const s = selectorsOf(
      'sum by (instance, le) (rate(relay_a_total{reason="x",instance=~"$instance"}[$__rate_interval])) > 5 * rate(up[6h] offset 5m) and on (job) relay_b',
    );
    expect(s).toEqual([
      {
        metric: 'relay_a_total',
        labels: [
          { name: 'reason', op: '=', value: 'x' },
          { name: 'instance', op: '=~', value: '$instance' },
        ],
      },
      { metric: 'up', labels: [] },
      { metric: 'relay_b', labels: [] },
    ]);
  });

  test('reports a name, a label and a label value that relay-bot does not export', () => {
    const bad = selectorsOf(
      'rate(relay_bogus_total[5m]) + relay_drops_total{colour="red"} + relay_drops_total{reason="nope"}',
    );
    expect(bad.flatMap((s) => problemsOf(s, exported)).sort()).toEqual(
      [
        'relay_bogus_total is not a metric relay-bot exports',
        'relay_drops_total has no label colour',
        'relay_drops_total{reason="nope"} is never exported',
      ].sort(),
    );
  });
});

describe('Grafana dashboard (deploy/grafana)', () => {
  test('there is one, and every series its panels and variables query is exported', () => {
    expect(dashboards.length).toBeGreaterThan(0);
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(10);
    const problems = exprs.flatMap(({ where, expr }) => {
      const selectors = selectorsOf(expr);
      return selectors.length === 0
        ? [`${where}: no series`]
        : selectors.flatMap((s) => problemsOf(s, exported).map((p) => `${where}: ${p}`));
    });
    expect(problems).toEqual([]);
  });

  test('it shows messages in and out, drops by reason, handler latency, outbox depth, groups and the connection', () => {
    const named = new Set(dashboardExprs().flatMap(({ expr }) => selectorsOf(expr).map((s) => s.metric)));
    for (const metric of [
      'relay_messages_in_total',
      'relay_messages_out_total',
      'relay_drops_total',
      'relay_handler_duration_seconds_bucket',
      'relay_outbox_depth',
      'relay_groups',
      'relay_group_events_total',
      'relay_mqtt_connected',
    ]) {
      expect([...named]).toContain(metric);
    }
  });

  test('panels have unique ids, fit the 24-column grid without overlapping, and use the datasource variable', () => {
    for (const { json } of dashboards) {
      const ids = json.panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      const cells = new Set<string>();
      for (const p of json.panels) {
        const { x, y, w, h } = p.gridPos;
        expect(x + w).toBeLessThanOrEqual(24);
        for (let i = x; i < x + w; i++) {
          for (let j = y; j < y + h; j++) {
            expect(cells.has(`${i},${j}`)).toBe(false);
            cells.add(`${i},${j}`);
          }
        }
        if (p.type !== 'row') expect(p.datasource?.uid).toBe('${datasource}');
      }
    }
  });
});

describe('Prometheus alert rules (deploy/prometheus)', () => {
  test('every series they name is exported', () => {
    expect(rules.length).toBeGreaterThan(0);
    const problems = rules.flatMap((r) =>
      selectorsOf(r.expr).flatMap((s) => problemsOf(s, exported).map((p) => `${r.alert}: ${p}`)),
    );
    expect(problems).toEqual([]);
  });

  test('each alert has a severity and a summary, and the names are unique', () => {
    for (const r of rules) {
      expect(r.alert).toMatch(/^Relay[A-Za-z]+$/);
      expect(['critical', 'warning', 'info']).toContain(r.labels?.severity);
      expect(r.annotations?.summary).toBeTruthy();
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
    }
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  test('they cover a lost broker, a growing outbox, drop spikes and group forks', () => {
    const alertOn = (metric: string, label?: [string, string]): string[] =>
      rules
        .filter((r) =>
          selectorsOf(r.expr).some(
            (s) =>
              s.metric === metric &&
              (!label || s.labels.some((l) => l.name === label[0] && l.value === label[1])),
          ),
        )
        .map((r) => r.alert!);
    expect(alertOn('relay_mqtt_connected')).toContain('RelayBrokerDisconnected');
    expect(alertOn('relay_outbox_depth')).toContain('RelayOutboxGrowing');
    expect(alertOn('relay_drops_total')).toContain('RelayDropsSpiking');
    expect(alertOn('relay_drops_total', ['reason', 'group_fork'])).toContain('RelayGroupFork');
  });
});
