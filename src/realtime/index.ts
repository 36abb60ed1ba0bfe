export * from './realtime.module';
export * from './realtime.publisher';
export * from './events.gateway';
export * from './redis-io.adapter';
export * from './realtime.constants';
export * from './realtime.cors';
export * from './socket-auth';
