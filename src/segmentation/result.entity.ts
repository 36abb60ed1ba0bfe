import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** The polygons as the API returns them (camelCase of the ML wire polygon). */
export interface ResultPolygon {
  id: number | string;
  type: 'external' | 'internal';
  parentId: number | string | null;
  points: [number, number][];
  class: string;
  confidence: number;
  features: Record<string, number>;
}

/** Who made a version: a task of the model, or a person's edit (or restore). */
export type ResultSource = 'ml' | 'edit';

/**
 * One row per version of an image's result (CONTRACT §3 "Editing a result"): every completed task and
 * every edit; `version` counts 1, 2, … per image and the newest is the current one (`is_current`).
 */
@Entity('segmentation_results')
export class ResultEntity {
  @PrimaryGeneratedColumn()
  id!: number;

  /** Null for an edit. */
  @Column({ name: 'task_id', type: 'uuid', nullable: true })
  taskId!: string | null;

  @Column({ name: 'image_id', type: 'integer' })
  imageId!: number;

  @Column({ type: 'integer' })
  version!: number;

  @Column({ type: 'varchar', length: 8 })
  source!: ResultSource;

  /** The person who saved an edit (null for a task's result, or once that account is gone). */
  @Column({ name: 'edited_by', type: 'integer', nullable: true })
  editedBy!: number | null;

  @Column({ name: 'is_current', type: 'boolean', default: true })
  isCurrent!: boolean;

  @Column({ name: 'image_width', type: 'integer' })
  imageWidth!: number;

  @Column({ name: 'image_height', type: 'integer' })
  imageHeight!: number;

  @Column({ name: 'processing_time_ms', type: 'integer' })
  processingTimeMs!: number;

  /** Every polygon, holes included. */
  @Column({ name: 'polygon_count', type: 'integer' })
  polygonCount!: number;

  /** External polygons. */
  @Column({ name: 'spheroid_count', type: 'integer' })
  spheroidCount!: number;

  @Column({ type: 'json' })
  polygons!: ResultPolygon[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
