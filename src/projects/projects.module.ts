import { DynamicModule, Module } from '@nestjs/common';
import type { AppRole } from '../config/app-role';
import { AuthModule } from '../auth/auth.module';
import { ImagesModule } from '../images/images.module';
import { RealtimeModule } from '../realtime/realtime.module';
import { ProjectSweeper } from './project-sweeper';
import { ProjectsController } from './projects.controller';
import { ProjectsService } from './projects.service';

/**
 * `/api/projects` (CONTRACT §3 "Projects and sharing"): projects, members and invitations, and the
 * background sweeper that finishes a project's deletion. Serving roles only. The rule every route
 * follows is AccessPolicy's (src/access); image routes of a project live in ImagesModule, its
 * segmentation in SegmentationModule.
 */
@Module({})
export class ProjectsModule {
  static forRole(role: AppRole): DynamicModule {
    return {
      module: ProjectsModule,
      imports: [AuthModule, ImagesModule, RealtimeModule.forRole(role)],
      controllers: [ProjectsController],
      providers: [ProjectsService, ProjectSweeper],
      exports: [ProjectSweeper],
    };
  }
}
