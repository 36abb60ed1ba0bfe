import { sanitizeOriginalName } from '../../../src/images/original-name';

describe('sanitizeOriginalName', () => {
  it('keeps ordinary names', () => {
    expect(sanitizeOriginalName('spheroid 01.png')).toBe('spheroid 01.png');
    expect(sanitizeOriginalName('Zellkultur-ä.tif')).toBe('Zellkultur-ä.tif');
  });
  it('strips path components of either separator', () => {
    expect(sanitizeOriginalName('../../etc/passwd')).toBe('passwd');
    expect(sanitizeOriginalName('C:\\Users\\ada\\scan.bmp')).toBe('scan.bmp');
  });
  it('strips control and bidi-override characters', () => {
    expect(sanitizeOriginalName('a\u0000b\r\n\tc\u007f.png')).toBe('abc.png');
    expect(sanitizeOriginalName('evil\u202egnp.exe')).toBe('evilgnp.exe');
  });
  it('falls back when nothing is left', () => {
    expect(sanitizeOriginalName(undefined, 'image.png')).toBe('image.png');
    expect(sanitizeOriginalName('dir/', 'image.png')).toBe('image.png');
    expect(sanitizeOriginalName('..', 'x')).toBe('x');
  });
  it('truncates to 255 characters on code-point boundaries', () => {
    expect(sanitizeOriginalName('a'.repeat(300))).toHaveLength(255);
    const emoji = sanitizeOriginalName('😀'.repeat(300));
    expect(Array.from(emoji)).toHaveLength(255);
    expect(emoji.endsWith('😀')).toBe(true);
  });
});
