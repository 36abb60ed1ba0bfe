import { Global, Module } from '@nestjs/common';
import { ConfigModule as NestConfigModule } from '@nestjs/config';
import { allConfigs } from './configuration';
import { validateEnv } from './env.schema';

/** Global typed configuration: one validated schema, namespaces per concern. */
@Global()
@Module({
  imports: [
    NestConfigModule.forRoot({
      isGlobal: true,
      ignoreEnvFile: true,
      cache: true,
      load: allConfigs,
      validate: (raw) => validateEnv(raw),
    }),
  ],
})
export class AppConfigModule {}
