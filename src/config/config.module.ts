import { DynamicModule, Global, Module } from '@nestjs/common';
import { ConfigModule as NestConfigModule } from '@nestjs/config';
import { allConfigs } from './configuration';
import { validateEnv } from './env.schema';

/** Options shared by every way of loading the configuration. */
const configOptions = () => ({
  isGlobal: true,
  ignoreEnvFile: true,
  cache: true,
  load: allConfigs,
  validate: (raw: Record<string, unknown>) => validateEnv(raw),
});

/**
 * Global typed configuration: one validated schema, namespaces per concern. Import `AppConfigModule`
 * in feature tests; applications use `AppConfigModule.forRoot()`, which reads the environment at the
 * time the application is built (so each test app can run with its own variables).
 */
@Global()
@Module({ imports: [NestConfigModule.forRoot(configOptions())] })
export class AppConfigModule {
  static forRoot(): DynamicModule {
    return { module: AppConfigRootModule, global: true, imports: [NestConfigModule.forRoot(configOptions())] };
  }
}

@Global()
@Module({})
class AppConfigRootModule {}
