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

/** One row per completed task; `is_current` marks the image's current result. */
@Entity('segmentation_results')
export class ResultEntity {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ name: 'task_id', type: 'uuid' })
  taskId!: string;

  @Column({ name: 'image_id', type: 'integer' })
  imageId!: number;

  @Column({ name: 'is_current', type: 'boolean', default: true })
  isCurrent!: boolean;

  @Column({ name: 'image_width', type: 'integer' })
  imageWidth!: number;

  @Column({ name: 'image_height', type: 'integer' })
  imageHeight!: number;

  @Column({ name: 'processing_time_ms', type: 'integer' })
  processingTimeMs!: number;

  @Column({ name: 'polygon_count', type: 'integer' })
  polygonCount!: number;

  @Column({ type: 'jsonb' })
  polygons!: ResultPolygon[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
