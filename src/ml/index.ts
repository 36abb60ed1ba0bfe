export * from './ml.errors';
export * from './ml.service';
export * from './ml-status.service';
export * from './ml.health';
export * from './ml-http.client';
export * from './ml.module';
