export { AccessModule } from './access.module';
export { AccessPolicy, AccessSubject, Loaded } from './access.policy';
export { Access, On, OwnOnly, Granted } from './access.rules';
export { ACCESS_RULES_KEY, OWN_ONLY_KEY, AccessRule } from './access.types';
export { MAX_IDS_PER_REQUEST, parseId, parseIdList } from './access.guard';
