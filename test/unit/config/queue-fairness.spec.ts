import { ConfigValidationError, validateEnv } from '../../../src/config/env.schema';

describe('QUEUE_FAIRNESS', () => {
  it('defaults to user and accepts user or none', () => {
    expect(validateEnv({}).QUEUE_FAIRNESS).toBe('user');
    expect(validateEnv({ QUEUE_FAIRNESS: 'none' }).QUEUE_FAIRNESS).toBe('none');
    expect(validateEnv({ QUEUE_FAIRNESS: 'user' }).QUEUE_FAIRNESS).toBe('user');
  });

  it('refuses any other value, naming the variable', () => {
    expect(() => validateEnv({ QUEUE_FAIRNESS: 'fifo' })).toThrow(ConfigValidationError);
    expect(() => validateEnv({ QUEUE_FAIRNESS: 'fifo' })).toThrow(/QUEUE_FAIRNESS/);
  });
});
