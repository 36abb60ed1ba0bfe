import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsString, MaxLength, MinLength } from 'class-validator';
import { OptionalField } from '../common/input-rules';
import { PaginationQuery } from '../common/pagination.dto';
import { EMAIL_MAX_LENGTH, IsEmailAddress } from '../common/email';
import { MEMBER_ROLES, MemberRole, PROJECT_ROLES, ProjectRole } from '../common/project-roles';

export const PROJECT_NAME_MAX = 200;
export const PROJECT_DESCRIPTION_MAX = 5000;

/* eslint-disable no-control-regex -- removing control characters is the point */
/** C0/C1 controls, DEL and bidi overrides/isolates: never stored in a name. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** The same, line breaks (CR, LF) excepted: a description keeps its lines. */
const CONTROLS_BUT_LINES = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/* eslint-enable no-control-regex */

/** A name as stored: without control characters, trimmed (a name of control characters only becomes empty: 400). */
export const cleanName = (v: unknown): unknown =>
  typeof v === 'string' ? v.normalize('NFC').replace(CONTROLS, '').trim() : v;
/** A description as stored: without control characters except line breaks. */
export const cleanDescription = (v: unknown): unknown =>
  typeof v === 'string' ? v.normalize('NFC').replace(CONTROLS_BUT_LINES, '') : v;

export class CreateProjectDto {
  @ApiProperty({
    minLength: 1,
    maxLength: PROJECT_NAME_MAX,
    description: 'stored without control characters, trimmed',
  })
  @Transform(({ value }) => cleanName(value))
  @IsString()
  @MinLength(1, { message: 'name must not be empty (control characters are removed)' })
  @MaxLength(PROJECT_NAME_MAX)
  name!: string;

  @ApiPropertyOptional({
    maxLength: PROJECT_DESCRIPTION_MAX,
    description: 'stored without control characters (line breaks kept)',
  })
  @OptionalField()
  @Transform(({ value }) => cleanDescription(value))
  @IsString()
  @MaxLength(PROJECT_DESCRIPTION_MAX)
  description?: string;
}

export class UpdateProjectDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: PROJECT_NAME_MAX })
  @OptionalField()
  @Transform(({ value }) => cleanName(value))
  @IsString()
  @MinLength(1, { message: 'name must not be empty (control characters are removed)' })
  @MaxLength(PROJECT_NAME_MAX)
  name?: string;

  @ApiPropertyOptional({ maxLength: PROJECT_DESCRIPTION_MAX })
  @OptionalField()
  @Transform(({ value }) => cleanDescription(value))
  @IsString()
  @MaxLength(PROJECT_DESCRIPTION_MAX)
  description?: string;
}

export class ListProjectsQuery extends PaginationQuery {}

export class ProjectOwnerDto {
  @ApiProperty({ type: 'integer' }) id!: number;
  @ApiProperty() email!: string;
}

/** The public `project` (CONTRACT §3). */
export class ProjectDto {
  @ApiProperty({ type: 'integer' }) id!: number;
  @ApiProperty() name!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ enum: PROJECT_ROLES, description: 'the caller’s role' }) role!: ProjectRole;
  @ApiProperty({ type: ProjectOwnerDto }) owner!: ProjectOwnerDto;
  @ApiProperty({ type: 'integer' }) imageCount!: number;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class ProjectListDto {
  @ApiProperty({ type: [ProjectDto] }) items!: ProjectDto[];
  @ApiProperty({ type: 'integer' }) total!: number;
  @ApiProperty({ type: 'integer' }) page!: number;
  @ApiProperty({ type: 'integer' }) limit!: number;
}

export class AddMemberDto {
  @ApiProperty({
    example: 'ada@example.org',
    description: 'with or without an account (pending until somebody registers with it)',
  })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim().toLowerCase() : value))
  @IsEmailAddress({ message: 'email must be a valid email address' })
  @MaxLength(EMAIL_MAX_LENGTH)
  email!: string;

  @ApiProperty({ enum: MEMBER_ROLES })
  @IsIn(MEMBER_ROLES as unknown as string[], { message: 'role must be one of: editor, viewer' })
  role!: MemberRole;
}

export class UpdateMemberDto {
  @ApiProperty({ enum: MEMBER_ROLES })
  @IsIn(MEMBER_ROLES as unknown as string[], { message: 'role must be one of: editor, viewer' })
  role!: MemberRole;
}

/** The public `member` (CONTRACT §3). */
export class MemberDto {
  @ApiProperty({ type: 'integer' }) id!: number;
  @ApiProperty() email!: string;
  @ApiProperty({ type: 'integer', nullable: true, description: 'null while the invitation is pending' })
  userId!: number | null;
  @ApiProperty({ enum: PROJECT_ROLES }) role!: ProjectRole;
  @ApiProperty({ description: 'no account has this address yet' }) pending!: boolean;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class MemberListDto {
  @ApiProperty({ type: [MemberDto] }) items!: MemberDto[];
}
