import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.join(__dirname, '../../../src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

describe('module shape', () => {
  it('no module imports the root module (types shared by modules live in config or common)', () => {
    const offenders = sources(SRC)
      .filter((file) => !['app.module.ts', 'app.factory.ts'].includes(path.relative(SRC, file)))
      .filter((file) => /from\s+['"][./]*(\.\.\/)*app\.module['"]/.test(readFileSync(file, 'utf8')))
      .map((file) => path.relative(SRC, file));
    expect(offenders).toEqual([]);
  });
});
