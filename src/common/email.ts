import { ValidateBy, type ValidationOptions, buildMessage } from 'class-validator';

/**
 * The one e-mail rule of the service, used by the environment schema (ADMIN_EMAIL) and the
 * register/login bodies alike: syntax only, never a list of top-level domains, so reserved and
 * internal domains (`.test`, `.internal`, `.local`, `.lan`) are accepted as in labs they are real.
 *
 * Accepted: `local@domain` with a dot-atom local part (RFC 5322 `atext` characters, dots between
 * them, at most 64 characters) and a domain of at least two DNS labels (letters, digits, inner
 * hyphens; 1..63 characters each), the last one letters only or an IDN `xn--` label; 254 characters
 * at most in all. Quoted local parts, IP-literal domains and comments are refused.
 */
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const TOP_LABEL = /^(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$/;

export const EMAIL_MAX_LENGTH = 254;

export function isEmailAddress(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > EMAIL_MAX_LENGTH) return false;
  const at = value.lastIndexOf('@');
  if (at <= 0) return false;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local.length > 64 || !LOCAL.test(local)) return false;
  const labels = domain.split('.');
  if (labels.length < 2) return false;
  return labels.every((l) => LABEL.test(l)) && TOP_LABEL.test(labels[labels.length - 1]);
}

/** class-validator decorator for {@link isEmailAddress}. */
export function IsEmailAddress(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isEmailAddress',
      validator: {
        validate: (value) => isEmailAddress(value),
        defaultMessage: buildMessage((each) => `${each}$property must be a valid email address`, options),
      },
    },
    options,
  );
}
