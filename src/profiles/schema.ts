/**
 * The ProfileMailPublic document (docs/profile.md is its specification; keep the two in
 * step). A JWS payload is `{"ProfileMailPublic": {...}}`: the type tag, as in the seed
 * sketch, makes a profile signature useless as any other owner-signed document.
 */
import { z } from 'zod';
import { isValidAddress } from './address.js';

/** What a sender should (prefer) or must (require) do to mail for this address. */
export const MAIL_POLICIES = ['none', 'sign', 'encrypt', 'sign-encrypt'] as const;
export type MailPolicy = (typeof MAIL_POLICIES)[number];

/** A UDF in presentation form: Base32 upper case, groups joined by '-'. */
export const UDF_PATTERN = /^[A-Z2-7]+(?:-[A-Z2-7]+)*$/;

const timestamp = z.iso.datetime();

/** C0 controls and DEL: no place in a display name, and they break terminals that print it. */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

export const connectionSchema = z.object({
  protocol: z.literal('SMTP'),
  /** Only S/MIME: OpenPGP binds the recipient into its KDF and cannot be recrypted. */
  encrypt: z.literal('S/MIME'),
  prefer: z.enum(MAIL_POLICIES),
  require: z.enum(MAIL_POLICIES),
  /** The group certificate: standard base64 (RFC 4648 §4, padded, no line breaks) of its DER. */
  key: z.base64().min(4).max(16_384),
});

export const profileMailPublicSchema = z.object({
  address: z.string().max(254).refine(isValidAddress, 'not a supported mail address'),
  name: z
    .string()
    .min(1)
    .max(256)
    .refine((s) => !hasControlCharacters(s), 'contains control characters'),
  udf: z.string().min(10).max(128).regex(UDF_PATTERN, 'not a UDF in Base32 presentation'),
  connection: z.array(connectionSchema).min(1).max(8),
  issued: timestamp,
  expires: timestamp.optional(),
});

export const profilePayloadSchema = z.object({ ProfileMailPublic: profileMailPublicSchema });

export type ProfileConnection = z.infer<typeof connectionSchema>;
export type ProfileMailPublic = z.infer<typeof profileMailPublicSchema>;
