import { envName, schema, type ConfigKey, type KeySpec } from './schema.js';

/** The README's configuration table, rendered from the schema (a test keeps the README in step). */
export function renderConfigTable(): string {
  const rows = ['| flag | env | default | commands | what it does |', '|---|---|---|---|---|'];
  for (const key of Object.keys(schema) as ConfigKey[]) {
    const spec: KeySpec = schema[key];
    const base = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    const others = Object.entries(spec.commandDefaults ?? {}).map(([c, v]) => `${c}: \`${v}\``);
    const def = base === '' ? '—' : `\`${base}\`` + (others.length ? ` (${others.join(', ')})` : '');
    const flag = spec.short ? `\`${spec.short}\`, \`${spec.flag}\`` : `\`${spec.flag}\``;
    const doc = spec.type === 'enum' ? `${spec.doc} (${spec.values.join(' \\| ')})` : spec.doc;
    rows.push(`| ${flag} | \`${envName(key)}\` | ${def} | ${spec.commands.join(', ')} | ${doc} |`);
  }
  return rows.join('\n');
}
