import { OwnOnly } from '../access/access.rules';
import { Body, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiTags,
} from '@nestjs/swagger';
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe } from '../common/input-rules';
import { ApiKeysService } from './api-keys.service';
import { AuthUser, CurrentPrincipal, CurrentUser, Principal, SessionOnly } from './auth-user';
import { ApiKeyCreatedDto, ApiKeyListDto, CreateApiKeyDto, SessionListDto } from './dto';
import { SessionsService } from './sessions.service';

const KEY_REFUSED = {
  403: 'called with an API key (keys cannot manage keys, sessions or the password)',
} as const;

/** The caller's sessions (a Bearer of one of them only: 403 with an API key). */
@ApiTags('auth')
@ApiBearerAuth()
@SessionOnly()
@OwnOnly()
@Controller('auth/sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Get()
  @ApiDoc('The caller’s live sessions, newest first', { ...AUTHED, ...KEY_REFUSED })
  @ApiOkResponse({ type: SessionListDto })
  async list(@CurrentUser() user: AuthUser, @CurrentPrincipal() principal: Principal) {
    return { items: await this.sessions.list(user.id, principal.id) };
  }

  @Delete(':id')
  @ApiDoc(
    'End one of the caller’s sessions',
    { ...AUTHED, 400: true, ...KEY_REFUSED, 404: 'no such live session of the caller' },
    'Its refresh token and access tokens are refused from then on, on every process within a second.',
  )
  @HttpCode(204)
  @ApiNoContentResponse()
  async end(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) id: number): Promise<void> {
    if (!(await this.sessions.end(user.id, id))) throw new NotFoundException('session not found');
  }
}

/** The caller's API keys (a Bearer only: 403 with an API key). */
@ApiTags('auth')
@ApiBearerAuth()
@SessionOnly()
@OwnOnly()
@Controller('auth/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post()
  @ApiDoc(
    'Create an API key',
    { ...AUTHED, 400: true, ...KEY_REFUSED },
    '`key` is shown this once (only its hash is stored). Send it as `X-Api-Key: <key>`.',
  )
  @ApiCreatedResponse({ type: ApiKeyCreatedDto })
  create(@CurrentUser() user: AuthUser, @Body() dto: CreateApiKeyDto) {
    return this.keys.create(user.id, dto.name, dto.expiresInDays);
  }

  @Get()
  @ApiDoc('The caller’s API keys (never the key itself)', { ...AUTHED, ...KEY_REFUSED })
  @ApiOkResponse({ type: ApiKeyListDto })
  async list(@CurrentUser() user: AuthUser) {
    return { items: await this.keys.list(user.id) };
  }

  @Delete(':id')
  @ApiDoc(
    'Revoke an API key',
    { ...AUTHED, 400: true, ...KEY_REFUSED, 404: 'no such key of the caller' },
    'Refused from then on, on every process within a second.',
  )
  @HttpCode(204)
  @ApiNoContentResponse()
  async revoke(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) id: number): Promise<void> {
    if (!(await this.keys.revoke(user.id, id))) throw new NotFoundException('API key not found');
  }
}
