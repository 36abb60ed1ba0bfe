import { AccessPolicy } from '../../../src/access';
import { NotFoundException } from '@nestjs/common';
import { Readable } from 'node:stream';
import type { Repository } from 'typeorm';
import type { ImageEntity } from '../../../src/images/image.entity';
import type { ImageInspector } from '../../../src/images/image-inspector';
import type { ImageStorage } from '../../../src/images/image-storage';
import { ImagesService } from '../../../src/images/images.service';
import type { PreparedQueries } from '../../../src/database/prepared-queries';

const image = { id: 7, userId: 1, storagePath: '2026/01/x.png' } as ImageEntity;

function setup() {
  const log: string[] = [];
  const repo = {
    findOneBy: jest.fn(async (w: { id: number; userId?: number }) =>
      w.id === 7 && (w.userId ?? 1) === 1 ? image : null,
    ),
    delete: jest.fn(async () => {
      log.push('row');
      return { affected: 1 };
    }),
    create: jest.fn((x: Partial<ImageEntity>) => x),
  };
  const prepared = {
    rows: jest.fn(async () => {
      throw new Error('db down');
    }),
  };
  const storage = {
    remove: jest.fn(async () => {
      log.push('file');
      return true;
    }),
    stage: jest.fn(async () => ({ tempPath: '/tmp/x.part', bytes: 3 })),
    commit: jest.fn(async () => ({ storagePath: '2026/01/y.png', absPath: '/u/2026/01/y.png', bytes: 3 })),
    discard: jest.fn(async () => undefined),
  };
  const inspector = {
    inspect: jest.fn(async () => ({ mime: 'image/png', ext: 'png', width: 1, height: 1 })),
  };
  const svc = new ImagesService(
    repo as unknown as Repository<ImageEntity>,
    storage as unknown as ImageStorage,
    inspector as unknown as ImageInspector,
    prepared as unknown as PreparedQueries,
    new AccessPolicy(),
  );
  return { svc, repo, storage, inspector, log };
}

describe('ImagesService', () => {
  it('runs every before-delete hook, in order, before the row and then the file are deleted', async () => {
    const { svc, log } = setup();
    svc.onBeforeDelete(async (img) => void log.push(`hook1:${img.id}`));
    svc.onBeforeDelete(async () => void log.push('hook2'));
    await svc.delete(1, 7);
    expect(log).toEqual(['hook1:7', 'hook2', 'row', 'file']);
  });

  it('a failing hook aborts the delete; an unregistered hook is not called', async () => {
    const { svc, repo, storage } = setup();
    const off = svc.onBeforeDelete(async () => {
      throw new Error('cannot cancel');
    });
    await expect(svc.delete(1, 7)).rejects.toThrow('cannot cancel');
    expect(repo.delete).not.toHaveBeenCalled();
    expect(storage.remove).not.toHaveBeenCalled();
    off();
    await svc.delete(1, 7);
    expect(repo.delete).toHaveBeenCalledTimes(1);
  });

  it("does not run hooks for another user's image (404)", async () => {
    const { svc } = setup();
    const hook = jest.fn(async () => undefined);
    svc.onBeforeDelete(hook);
    await expect(svc.delete(2, 7)).rejects.toBeInstanceOf(NotFoundException);
    await expect(svc.findOwned(1, 2 ** 31)).rejects.toBeInstanceOf(NotFoundException);
    expect(hook).not.toHaveBeenCalled();
  });

  it('removes the committed file when the row cannot be written', async () => {
    const { svc, storage } = setup();
    await expect(
      svc.upload(1, {
        stream: Readable.from([Buffer.from('abc')]),
        filename: 'a.png',
        truncated: () => false,
        maxBytes: 10,
      }),
    ).rejects.toThrow('db down');
    expect(storage.remove).toHaveBeenCalledWith('2026/01/y.png');
  });

  it('refuses a stream the transport truncated with 413 and discards it, without inspecting', async () => {
    const { svc, storage, inspector } = setup();
    await expect(
      svc.upload(1, { stream: Readable.from([Buffer.from('abc')]), truncated: () => true, maxBytes: 3 }),
    ).rejects.toMatchObject({ status: 413 });
    expect(storage.discard).toHaveBeenCalled();
    expect(inspector.inspect).not.toHaveBeenCalled();
  });
});
