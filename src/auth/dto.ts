import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsString, MaxLength, MinLength } from 'class-validator';
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

export class AuthResponseDto {
  @ApiProperty({ type: UserDto }) user!: UserDto;
  @ApiProperty() accessToken!: string;
}
