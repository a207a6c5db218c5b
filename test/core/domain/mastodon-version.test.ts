import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareMastodonVersions } from '../../../core/domain/mastodon-version.ts';

test('versions compare numerically, part by part', () => {
  assert.ok(compareMastodonVersions('v4.5.11', 'v4.5.9') > 0, '11 is after 9, unlike in string order');
  assert.ok(compareMastodonVersions('v4.10.0', 'v4.9.12') > 0);
  assert.ok(compareMastodonVersions('v4.5.11', 'v5.0.0') < 0);
  assert.equal(compareMastodonVersions('v4.5.11', 'v4.5.11'), 0);
});

test('anything but a release tag is refused', () => {
  for (const tag of ['4.5.11', 'v4.5', 'v4.5.11-rc1', 'latest', '']) {
    assert.throws(() => compareMastodonVersions(tag, 'v4.5.11'), /not a Mastodon release tag/, tag);
  }
});
