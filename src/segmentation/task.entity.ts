import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { SegmentJobData, TaskStatus } from '../common/contracts';

/** One row per segmentation task: PostgreSQL is the record of every task (CONTRACT §7). */
@Entity('queue_jobs')
export class TaskEntity {
  @PrimaryColumn({ name: 'task_id', type: 'uuid' })
  taskId!: string;

  @Column({ name: 'job_id', type: 'varchar', length: 128 })
  jobId!: string;

  @Column({ name: 'image_id', type: 'integer' })
  imageId!: number;

  @Column({ name: 'user_id', type: 'integer' })
  userId!: number;

  /** Not a column: the image's project, when a statement read it with the task (events, access). */
  projectId?: number | null;

  /** Not a column: the image's storage key, when a statement read it with the task (the job's hint). */
  storagePath?: string;

  @Column({ type: 'varchar', length: 16 })
  status!: TaskStatus;

  @Column({ type: 'smallint' })
  priority!: number;

  @Column({ type: 'smallint', default: 0 })
  progress!: number;

  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'error_message', type: 'text', nullable: true })
  errorMessage!: string | null;

  @Column({ name: 'dead_lettered', type: 'boolean', default: false })
  deadLettered!: boolean;

  @Column({ name: 'enqueued_at', type: 'timestamptz', nullable: true })
  enqueuedAt!: Date | null;

  @Column({ name: 'processing_started_at', type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Column({ name: 'processing_completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

/** The Bull payload of a task: its ids, and its image's storage key when it was read with the task. */
export function segmentJobData(t: TaskEntity): SegmentJobData {
  const data: SegmentJobData = { taskId: t.taskId, imageId: t.imageId, userId: t.userId };
  if (t.storagePath) data.storagePath = t.storagePath;
  return data;
}
