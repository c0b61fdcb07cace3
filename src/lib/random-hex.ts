/**
 * Random hex digits for names that must not collide: temp files, an owner's nonce. They are no secret, so this uses
 * Math.random rather than node:crypto, whose loading alone costs about 17 ms of every command's start-up.
 */
export function randomHex(bytes: number): string {
  let out = ''
  while (out.length < bytes * 2) {
    out += Math.floor(Math.random() * 0x1_00_00_00_00)
      .toString(16)
      .padStart(8, '0')
  }

  return out.slice(0, bytes * 2)
}
