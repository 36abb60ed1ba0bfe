import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { authConfig } from '../config/configuration';
import { UsersService } from './users.service';

/** When ADMIN_EMAIL and ADMIN_PASSWORD are both set, that admin account exists after start. */
@Injectable()
export class AdminSeeder implements OnApplicationBootstrap {
  private readonly logger = new Logger(AdminSeeder.name);

  constructor(
    @Inject(authConfig.KEY) private readonly cfg: ConfigType<typeof authConfig>,
    private readonly users: UsersService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.cfg.adminEmail || !this.cfg.adminPassword) return;
    await this.users.ensureAdmin(this.cfg.adminEmail, this.cfg.adminPassword);
    this.logger.log({ email: this.cfg.adminEmail }, 'admin account ensured');
  }
}
