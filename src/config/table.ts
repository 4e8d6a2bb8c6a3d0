import { envName, schema, type ConfigKey, type KeySpec } from './schema.js';

/** The README's configuration table, rendered from the schema (a test keeps the README in step). */
export function renderConfigTable(): string {
  const rows = ['| flag | env | default | commands | what it does |', '|---|---|---|---|---|'];
  for (const key of Object.keys(schema) as ConfigKey[]) {
    const spec: KeySpec = schema[key];
    const def = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    const flag = spec.short ? `\`${spec.short}\`, \`${spec.flag}\`` : `\`${spec.flag}\``;
    const doc = spec.type === 'enum' ? `${spec.doc} (${spec.values.join(' \\| ')})` : spec.doc;
    rows.push(`| ${flag} | \`${envName(key)}\` | ${def === '' ? '—' : `\`${def}\``} | ${spec.commands.join(', ')} | ${doc} |`);
  }
  return rows.join('\n');
}
