import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiOkResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiTags,
} from '@nestjs/swagger';
import { ImagesService } from '../images/images.service';
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe } from '../common/input-rules';
import { Public } from '../common/public.decorator';
import { OwnOnly } from '../access/access.rules';
import { AuthService } from './auth.service';
import { AuthUser, CurrentPrincipal, CurrentUser, Principal, Roles, SessionOnly } from './auth-user';
import {
  AuthResponseDto,
  ChangePasswordDto,
  CredentialsDto,
  RefreshDto,
  TokensDto,
  UpdateUserDto,
  UserDto,
} from './dto';
import { cleanUserAgent } from './secrets';
import { toUserView, UserView } from './user.entity';
import { UsersService } from './users.service';
import { NotFoundException } from '@nestjs/common';

@ApiTags('auth')
@OwnOnly()
@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly users: UsersService,
  ) {}

  @Public()
  @Post('register')
  @ApiDoc('Create an account', { 400: true, 409: 'the email is taken', 429: true, 503: true })
  @ApiCreatedResponse({ type: AuthResponseDto })
  register(@Body() dto: CredentialsDto, @Headers('user-agent') userAgent?: string) {
    return this.auth.register(dto.email, dto.password, cleanUserAgent(userAgent));
  }

  @Public()
  @Post('login')
  @ApiDoc('Log in', { 400: true, 401: 'wrong email or password', 429: true, 503: true })
  @HttpCode(200)
  @ApiOkResponse({ type: AuthResponseDto })
  login(@Body() dto: CredentialsDto, @Headers('user-agent') userAgent?: string) {
    return this.auth.login(dto.email, dto.password, cleanUserAgent(userAgent));
  }

  @Public()
  @Post('refresh')
  @ApiDoc(
    'A new access token and the successor of the refresh token',
    {
      400: true,
      401: 'unknown, expired, malformed or ended refresh token (a reused one ends its session)',
      429: true,
      503: true,
    },
    'A refresh token works once. Presenting one that was already used ends its whole session (reuse detection).',
  )
  @HttpCode(200)
  @ApiOkResponse({ type: TokensDto })
  refresh(@Body() dto: RefreshDto) {
    return this.auth.refresh(dto.refreshToken);
  }

  @Public()
  @Post('logout')
  @ApiDoc(
    'End the session of a refresh token',
    { 400: true, 429: true, 503: true },
    'Its refresh token and every access token of the session are refused from then on, on every process within a second. An unknown token is 204 too.',
  )
  @HttpCode(204)
  @ApiNoContentResponse()
  async logout(@Body() dto: RefreshDto): Promise<void> {
    await this.auth.logout(dto.refreshToken);
  }

  @Post('password')
  @SessionOnly()
  @ApiDoc('Change the password; every other session ends', {
    ...AUTHED,
    400: true,
    401: 'no or invalid Bearer token, or a wrong currentPassword',
    403: 'called with an API key',
  })
  @ApiBearerAuth()
  @HttpCode(204)
  @ApiNoContentResponse()
  async changePassword(
    @CurrentUser() user: AuthUser,
    @CurrentPrincipal() principal: Principal,
    @Body() dto: ChangePasswordDto,
  ): Promise<void> {
    await this.auth.changePassword(user.id, principal.id, dto.currentPassword, dto.newPassword);
  }

  @Get('me')
  @ApiDoc('The caller', { ...AUTHED, 404: 'the account was deleted' })
  @ApiBearerAuth()
  @ApiOkResponse({ type: UserDto })
  async me(@CurrentUser() user: AuthUser): Promise<UserView> {
    const found = await this.users.findById(user.id);
    if (!found) throw new NotFoundException('user not found');
    return toUserView(found);
  }
}

@ApiTags('admin')
@ApiBearerAuth()
@Controller('admin/users')
export class AdminUsersController {
  constructor(
    private readonly users: UsersService,
    private readonly images: ImagesService,
  ) {}

  @Patch(':id')
  @ApiDoc('Change a user’s role or premium flag', { ...AUTHED, 400: true, 403: true, 404: 'no such user' })
  @Roles('admin')
  @ApiOkResponse({ type: UserDto })
  async update(@Param('id', ParseIntIdPipe) id: number, @Body() dto: UpdateUserDto): Promise<UserView> {
    return toUserView(await this.users.update(id, dto));
  }

  /**
   * Deletes a user: first each of its images as `DELETE /api/images/:id` would (open tasks cancelled,
   * files removed), then the account (remaining rows go by cascade). Its tokens stop working at once
   * on every process.
   */
  @Delete(':id')
  @ApiDoc('Delete a user, its images and their results', {
    ...AUTHED,
    400: true,
    403: true,
    404: 'no such user',
  })
  @Roles('admin')
  @HttpCode(204)
  @ApiNoContentResponse()
  async remove(@Param('id', ParseIntIdPipe) id: number): Promise<void> {
    if (!(await this.users.findById(id))) throw new NotFoundException('user not found');
    for (;;) {
      const { items } = await this.images.list(id, 1, 100);
      if (items.length === 0) break;
      for (const image of items)
        await this.images.delete(id, image.id).catch((err: unknown) => {
          if (!(err instanceof NotFoundException)) throw err; // deleted meanwhile
        });
    }
    if (!(await this.users.remove(id))) throw new NotFoundException('user not found');
  }
}
