/**
 * The blinded issue of a recryption key (docs/design.md §2). `rk = g·d⁻¹` needs the group
 * owner's `g` and the device owner's `d`; neither party — nor the gateway, which ends up
 * holding `rk` — learns the other's secret:
 *
 *   device side:  picks a random t, sends α = t·d⁻¹ to the group owner, τ = t⁻¹ to the gateway
 *   group owner:  sends β = g·α to the gateway
 *   gateway:      rk = β·τ = g·t·d⁻¹·t⁻¹ = g·d⁻¹
 *
 * α is uniform for any d because t is (multiplication by d⁻¹ permutes [1, n-1]); τ is
 * uniform and independent of both secrets. t must be fresh for every issue: the same t
 * used twice would let the owner and the gateway together compute d⁻¹ = α·τ.
 */
import { checkScalar, invertScalar, multiplyScalars, randomScalar } from './scalar.js';
import type { Scalar } from './types.js';

/** What the device side sends, and to whom. Keep the two apart: together they reveal d. */
export interface BlindedRequest {
  /** α = t·d⁻¹, for the group owner. */
  toOwner: Scalar;
  /** τ = t⁻¹, for the gateway. */
  toGateway: Scalar;
}

/**
 * Device side: blind the device secret. `blinding` is t; callers leave it out (a fresh
 * random scalar is drawn) — tests pass it to make runs reproducible.
 */
export function blindDeviceSecret(
  deviceSecret: Scalar,
  blinding: Scalar = randomScalar(),
): BlindedRequest {
  checkScalar(deviceSecret, 'deviceSecret');
  checkScalar(blinding, 'blinding');
  return {
    toOwner: multiplyScalars(blinding, invertScalar(deviceSecret)),
    toGateway: invertScalar(blinding),
  };
}

/** Group owner side: β = g·α. The owner learns nothing about d from α. */
export function ownerRespond(groupSecret: Scalar, alpha: Scalar): Scalar {
  checkScalar(groupSecret, 'groupSecret');
  checkScalar(alpha, 'alpha');
  return multiplyScalars(groupSecret, alpha);
}

/** Gateway side: rk = β·τ, the recryption key it stores for the device. */
export function gatewayUnblind(beta: Scalar, tau: Scalar): Scalar {
  checkScalar(beta, 'beta');
  checkScalar(tau, 'tau');
  return multiplyScalars(beta, tau);
}
