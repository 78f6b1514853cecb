/**
 * Unsolicited Welcomes cost the recipient an MLS join; PROTOCOL.md §10 caps them per sender and in
 * total per minute. Sliding one-minute windows, memory bounded by the total cap.
 */
import type { Clock } from './clock.js';

export interface WelcomeQuotaLimits {
  perSenderPerMinute: number;
  totalPerMinute: number;
}

export const DEFAULT_WELCOME_QUOTA: WelcomeQuotaLimits = { perSenderPerMinute: 5, totalPerMinute: 60 };

export class WelcomeQuota {
  private accepted: Array<{ sender: string; at: number }> = [];

  constructor(
    private readonly clock: Clock,
    private readonly limits: WelcomeQuotaLimits = DEFAULT_WELCOME_QUOTA,
  ) {}

  /** Records the attempt and says whether it is within quota. */
  take(sender: string): boolean {
    const now = this.clock.now();
    this.accepted = this.accepted.filter((a) => a.at > now - 60);
    if (this.accepted.length >= this.limits.totalPerMinute) return false;
    const fromSender = this.accepted.filter((a) => a.sender === sender).length;
    if (fromSender >= this.limits.perSenderPerMinute) return false;
    this.accepted.push({ sender, at: now });
    return true;
  }
}
