import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsString, Matches, Max, MaxLength, Min, MinLength } from 'class-validator';
import { OptionalField } from '../common/input-rules';
import type { UserRole } from '../common/contracts';
import { EMAIL_MAX_LENGTH, IsEmailAddress } from '../common/email';

export class CredentialsDto {
  @ApiProperty({ example: 'ada@example.org' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim().toLowerCase() : value))
  @IsEmailAddress({ message: 'email must be a valid email address' })
  @MaxLength(EMAIL_MAX_LENGTH)
  email!: string;

  @ApiProperty({ minLength: 8, example: 'correct horse battery' })
  @IsString()
  @MinLength(8, { message: 'password must be at least 8 characters' })
  @MaxLength(128)
  password!: string;
}

export class UpdateUserDto {
  @ApiPropertyOptional()
  @OptionalField()
  @IsBoolean()
  isPremium?: boolean;

  @ApiPropertyOptional({ enum: ['user', 'admin'] })
  @OptionalField()
  @IsIn(['user', 'admin'])
  role?: UserRole;
}

export class UserDto {
  @ApiProperty() id!: number;
  @ApiProperty() email!: string;
  @ApiProperty({ enum: ['user', 'admin'] }) role!: UserRole;
  @ApiProperty() isPremium!: boolean;
  @ApiProperty() createdAt!: string;
}

export class TokensDto {
  @ApiProperty({
    description: 'HS256 access token of the session; send as `Authorization: Bearer <accessToken>`',
  })
  accessToken!: string;
  @ApiProperty({
    description: 'opaque; works once: `POST /api/auth/refresh` answers with its successor',
    example: 'rt_…',
  })
  refreshToken!: string;
  @ApiProperty({ description: 'seconds until accessToken expires (JWT_EXPIRES_IN)', example: 900 })
  expiresIn!: number;
}

export class AuthResponseDto extends TokensDto {
  @ApiProperty({ type: UserDto }) user!: UserDto;
}

/** Refresh and logout: the session's current refresh token. A malformed one is 401 (refresh) or ignored (logout). */
export class RefreshDto {
  @ApiProperty({ example: 'rt_…' })
  @IsString()
  @MaxLength(4096)
  refreshToken!: string;
}

export class ChangePasswordDto {
  @ApiProperty()
  @IsString()
  @MaxLength(128)
  currentPassword!: string;

  @ApiProperty({ minLength: 8 })
  @IsString()
  @MinLength(8, { message: 'newPassword must be at least 8 characters' })
  @MaxLength(128)
  newPassword!: string;
}

export class SessionDto {
  @ApiProperty() id!: number;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ description: 'the last refresh (the login when never refreshed)' }) lastUsedAt!: string;
  @ApiProperty({ type: String, nullable: true, maxLength: 256, description: 'without control characters' })
  userAgent!: string | null;
  @ApiProperty({ description: 'the session of the calling token' }) current!: boolean;
}

export class SessionListDto {
  @ApiProperty({ type: [SessionDto] }) items!: SessionDto[];
}

export class CreateApiKeyDto {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'nightly batch' })
  @Transform(({ value }) => (typeof value === 'string' ? value.trim() : value))
  @IsString()
  @Matches(/\S/, { message: 'name must not be blank' })
  @Matches(/^[^\p{Cc}]*$/u, { message: 'name must not contain control characters' })
  @MaxLength(100)
  name!: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 3650, description: 'absent: the key never expires' })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(3650)
  expiresInDays?: number;
}

export class ApiKeyDto {
  @ApiProperty() id!: number;
  @ApiProperty() name!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ type: String, nullable: true }) expiresAt!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'recorded at most once a minute per api process',
  })
  lastUsedAt!: string | null;
}

export class ApiKeyCreatedDto {
  @ApiProperty() id!: number;
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'shown this once; send as `X-Api-Key: <key>`', example: 'sk_…' }) key!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ type: String, nullable: true }) expiresAt!: string | null;
}

export class ApiKeyListDto {
  @ApiProperty({ type: [ApiKeyDto] }) items!: ApiKeyDto[];
}
