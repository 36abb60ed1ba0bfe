import type { DataSource } from 'typeorm';
import { ImageLinks } from '../../../src/media/links/image-links';
import type { LinkSigner } from '../../../src/media/links/link-signer';

function setup(withResult: number[]) {
  const signer = { link: (id: number, variant: string, now: number) => `/${id}/${variant}?exp=${now}` };
  const db = { query: jest.fn(async () => withResult.map((image_id) => ({ image_id }))) };
  return { links: new ImageLinks(signer as unknown as LinkSigner, db as unknown as DataSource), db };
}

describe('ImageLinks', () => {
  it('urlsFor: one query for all the images; overlay only for those with a current result', async () => {
    const { links, db } = setup([2]);
    const urls = await links.urlsFor([1, 2], 1000);
    expect(db.query).toHaveBeenCalledTimes(1);
    expect(urls.get(1)).toEqual({ file: '/1/file?exp=1000', thumbnail: '/1/thumbnail?exp=1000', overlay: null });
    expect(urls.get(2)?.overlay).toBe('/2/overlay?exp=1000');
  });

  it('urlsForNew: the urls urlsFor gives an image without a result, without a query', async () => {
    const { links, db } = setup([]);
    const fresh = links.urlsForNew(5, 1000);
    expect(db.query).not.toHaveBeenCalled();
    expect(fresh).toEqual((await links.urlsFor([5], 1000)).get(5));
    expect(fresh.overlay).toBeNull();
  });
});
