import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Patch,
  Post,
  Query,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiTags,
} from '@nestjs/swagger';
import { Access, On, OwnOnly } from '../access';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe } from '../common/input-rules';
import {
  AddMemberDto,
  CreateProjectDto,
  ListProjectsQuery,
  MemberDto,
  MemberListDto,
  ProjectDto,
  ProjectListDto,
  UpdateMemberDto,
  UpdateProjectDto,
} from './dto';
import { MemberView, ProjectsService, ProjectView } from './projects.service';

const NOT_MEMBER = 'no such project, or the caller is not a member';

/** Projects and members (CONTRACT §3 "Projects and sharing"); a project's images: ProjectImagesController. */
@ApiTags('projects')
@ApiBearerAuth()
@Controller('projects')
export class ProjectsController {
  constructor(private readonly projects: ProjectsService) {}

  @Post()
  @ApiDoc('Create a project (the caller is its owner)', { ...AUTHED, 400: true })
  @ApiCreatedResponse({ type: ProjectDto })
  @OwnOnly()
  create(@CurrentUser() user: AuthUser, @Body() dto: CreateProjectDto): Promise<ProjectView> {
    return this.projects.create(user, dto.name, dto.description);
  }

  @Get()
  @ApiDoc('The projects the caller owns or is a member of, most recently updated first', {
    ...AUTHED,
    400: true,
  })
  @ApiOkResponse({ type: ProjectListDto })
  @OwnOnly()
  list(@CurrentUser() user: AuthUser, @Query() q: ListProjectsQuery) {
    return this.projects.list(user, q.page, q.limit);
  }

  @Get(':id')
  @ApiDoc('Get a project (any member)', { ...AUTHED, 400: true, 404: NOT_MEMBER })
  @ApiOkResponse({ type: ProjectDto })
  @Access(On.project('view'))
  get(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) id: number): Promise<ProjectView> {
    return this.projects.get(user, id);
  }

  @Patch(':id')
  @ApiDoc('Rename a project or change its description (editor)', {
    ...AUTHED,
    400: true,
    403: 'the caller is a viewer',
    404: NOT_MEMBER,
  })
  @ApiOkResponse({ type: ProjectDto })
  @Access(On.project('edit'))
  update(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) id: number,
    @Body() dto: UpdateProjectDto,
  ): Promise<ProjectView> {
    return this.projects.update(user, id, dto);
  }

  @Delete(':id')
  @ApiDoc(
    'Delete a project and every image in it (owner)',
    { ...AUTHED, 400: true, 403: 'the caller is not the owner', 404: NOT_MEMBER },
    'The project is gone for everyone at once; its images (open tasks cancelled, results, files and every variant) are removed in the background, resuming after a restart.',
  )
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiNoContentResponse()
  @Access(On.project('manage'))
  async remove(@Param('id', ParseIntIdPipe) id: number): Promise<void> {
    await this.projects.remove(id);
  }

  @Get(':id/members')
  @ApiDoc('The members of a project, the owner first (any member)', { ...AUTHED, 400: true, 404: NOT_MEMBER })
  @ApiOkResponse({ type: MemberListDto })
  @Access(On.project('view'))
  members(@Param('id', ParseIntIdPipe) id: number) {
    return this.projects.members(id);
  }

  @Post(':id/members')
  @ApiDoc(
    'Invite a member by e-mail (owner)',
    {
      ...AUTHED,
      400: 'malformed id, e-mail or role',
      403: 'the caller is not the owner',
      404: NOT_MEMBER,
      409: 'the address is already a member',
    },
    'Without an account for the address the member is pending and becomes active when somebody registers with it; the answer is the same either way (only `pending` and `userId` differ).',
  )
  @ApiCreatedResponse({ type: MemberDto })
  @Access(On.project('manage'))
  addMember(@Param('id', ParseIntIdPipe) id: number, @Body() dto: AddMemberDto): Promise<MemberView> {
    return this.projects.addMember(id, dto.email, dto.role);
  }

  @Patch(':id/members/:memberId')
  @ApiDoc('Change a member’s role (owner)', {
    ...AUTHED,
    400: 'malformed id or role, or the owner’s own entry',
    403: 'the caller is not the owner',
    404: 'no such project or member, or the caller is not a member',
  })
  @ApiOkResponse({ type: MemberDto })
  @Access(On.project('manage'))
  updateMember(
    @Param('id', ParseIntIdPipe) id: number,
    @Param('memberId', ParseIntIdPipe) memberId: number,
    @Body() dto: UpdateMemberDto,
  ): Promise<MemberView> {
    return this.projects.updateMember(id, memberId, dto.role);
  }

  @Delete(':id/members/:memberId')
  @ApiDoc('Remove a member (owner; or any member removing their own membership)', {
    ...AUTHED,
    400: 'malformed id, or the owner’s own entry',
    403: 'the caller is not the owner and the membership is not theirs',
    404: 'no such project or member, or the caller is not a member',
  })
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiNoContentResponse()
  @Access(On.project('view'))
  async removeMember(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) id: number,
    @Param('memberId', ParseIntIdPipe) memberId: number,
  ): Promise<void> {
    await this.projects.removeMember(user, id, memberId);
  }
}
