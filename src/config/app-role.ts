/** The process roles of CONTRACT §1, chosen by `APP_ROLE`. Lives in config so every module can use it without importing the root module. */
export type AppRole = 'all' | 'api' | 'worker';

export const APP_ROLES: readonly AppRole[] = ['all', 'api', 'worker'];
