import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import type { AuthUser } from '../auth/auth-user';
import { ImagesService } from '../images/images.service';
import type { ImageEntity } from '../images/image.entity';
import { RealtimePublisher } from '../realtime/realtime.publisher';
import type { ResultPolygon } from './result.entity';
import { buildPolygons, parseBaseVersion, parseEdit, parseRestore } from './result-edit';
import { NewVersionOutcome, ResultVersionStore } from './result-versions.store';
import { resultJson, type VersionView } from './views';

/** A `result` as JSON text, ready to send (see {@link resultJson}). */
export type ResultJson = string;

/**
 * Result versions (CONTRACT §3 "Editing a result"): read the current or any version, list them, save
 * an edit, restore an old one. One method per route, each starting with {@link image} — the single
 * place these routes decide who may see or change an image's result (today: its uploader).
 */
@Injectable()
export class ResultVersionsService {
  constructor(
    private readonly images: ImagesService,
    private readonly store: ResultVersionStore,
    private readonly realtime: RealtimePublisher,
  ) {}

  /** `GET /api/images/:id/segmentation[?version=N]`. */
  async get(image: ImageEntity, version?: number): Promise<ResultJson> {
    const imageId = image.id;
    const stored = await this.store.read(imageId, version);
    if (!stored)
      throw new NotFoundException(
        version === undefined
          ? 'no segmentation result for this image'
          : `the image has no version ${version}`,
      );
    return resultJson(stored.head, stored.polygonsJson);
  }

  /** `GET /api/images/:id/segmentation/versions`. */
  async list(image: ImageEntity): Promise<{ items: VersionView[] }> {
    return { items: await this.store.list(image.id) };
  }

  /** `PUT /api/images/:id/segmentation`: the edit becomes the next version when its base is current. */
  async save(user: AuthUser, image: ImageEntity, body: unknown): Promise<ResultJson> {
    const imageId = image.id;
    const base = parseBaseVersion(body);
    const current = await this.store.current(imageId);
    const currentVersion = current?.version ?? 0;
    if (base !== currentVersion) throw stale(base, currentVersion);
    const space = current
      ? { width: current.width, height: current.height }
      : { width: image.width, height: image.height };
    const edit = parseEdit(body, space);
    // The base is only needed for confidences and new ids: not for an empty edit.
    const basePolygons: ResultPolygon[] =
      current && edit.polygons.length ? (JSON.parse(current.polygonsJson) as ResultPolygon[]) : [];
    const polygons = buildPolygons(edit, basePolygons);
    const spheroidCount = polygons.filter((p) => p.type === 'external').length;
    const polygonsJson = JSON.stringify(polygons);
    const made = this.accepted(
      await this.store.create(imageId, base, user.id, { ...space, spheroidCount, polygonsJson }),
      base,
    );
    this.announce(image, made.version, polygons.length, spheroidCount);
    return resultJson(
      {
        taskId: null,
        imageId,
        version: made.version,
        source: 'edit',
        editedBy: { id: user.id, email: user.email },
        imageWidth: space.width,
        imageHeight: space.height,
        processingTimeMs: 0,
        createdAt: made.createdAt.toISOString(),
      },
      polygonsJson,
    );
  }

  /** `POST /api/images/:id/segmentation/versions/:version/restore`: version N's polygons as the next version. */
  async restore(user: AuthUser, image: ImageEntity, version: number, body: unknown): Promise<ResultJson> {
    const imageId = image.id;
    const base = parseRestore(body);
    const outcome = await this.store.create(imageId, base, user.id, { fromVersion: version });
    if (outcome.kind === 'no-version') throw new NotFoundException(`the image has no version ${version}`);
    const made = this.accepted(outcome, base);
    const stored = await this.store.read(imageId, made.version);
    if (!stored) throw new NotFoundException('image not found'); // deleted meanwhile
    this.announce(image, made.version, stored.polygonCount, stored.spheroidCount);
    return resultJson(stored.head, stored.polygonsJson);
  }

  private accepted(outcome: NewVersionOutcome, base: number): { version: number; createdAt: Date } {
    switch (outcome.kind) {
      case 'ok':
        return outcome;
      case 'stale':
        throw stale(base, outcome.current);
      case 'task':
        throw new ConflictException(
          'the image has a queued or processing segmentation task; edit it when the task has finished',
        );
      default:
        throw new NotFoundException('image not found');
    }
  }

  /** `segmentation:updated` to the image's uploader and, in a project, to its room (CONTRACT §6). */
  private announce(image: ImageEntity, version: number, polygonCount: number, spheroidCount: number): void {
    this.realtime.toImage(image, 'segmentation:updated', {
      imageId: image.id,
      projectId: image.projectId ?? null,
      version,
      source: 'edit',
      polygonCount,
      spheroidCount,
    });
  }
}

const stale = (base: number, current: number) =>
  new ConflictException(`baseVersion ${base} is not the current version: the current version is ${current}`);
