import { realpath, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { SegmenterError } from './segmenter.errors';

const isInside = (root: string, candidate: string) => {
  const relative = path.relative(root, candidate);
  return relative === '' ? false : !relative.startsWith('..') && !path.isAbsolute(relative);
};

/**
 * Resolves `imagePath` (relative to the upload root) to a real file under that root: absolute paths
 * and `..` segments are refused (400), as is a path whose symlinks lead out of the root (400); a path
 * that does not exist is 404. Messages never name a server path.
 */
export async function resolveUploadPath(uploadRoot: string, imagePath: string): Promise<string> {
  if (path.isAbsolute(imagePath) || path.win32.isAbsolute(imagePath)) {
    throw new SegmenterError(400, 'image_path must be relative to the upload directory');
  }
  if (imagePath.split(/[\\/]+/).includes('..'))
    throw new SegmenterError(400, 'image_path must not contain ".." segments');
  const candidate = path.resolve(uploadRoot, imagePath);
  if (!isInside(uploadRoot, candidate))
    throw new SegmenterError(400, 'image_path must name a file in the upload directory');

  const [realRoot, realFile] = await Promise.all([realOrNull(uploadRoot), realOrNull(candidate)]);
  if (realRoot === null || realFile === null) throw new SegmenterError(404, 'image not found');
  if (!isInside(realRoot, realFile))
    throw new SegmenterError(400, 'image_path leads outside the upload directory');
  if (!(await stat(realFile)).isFile()) throw new SegmenterError(400, 'image_path is not a file');
  return realFile;
}

async function realOrNull(p: string): Promise<string | null> {
  try {
    return await realpath(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}
