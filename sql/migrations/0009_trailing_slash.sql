-- A trailing `/` is kept (API.md, Validation): the stored and published endpoint_url is the
-- submitted one after the safe normalisations, because `/mcp/` and `/mcp` can be different
-- resources and clients compare the published URL byte for byte. Uniqueness still treats them as
-- one endpoint: the claims of 0003 are keyed by the URL with one trailing `/` of a non-root path
-- (before the query) removed. shared/schemas/urls.py's claim_key is the same expression.
CREATE FUNCTION endpoint_url_claim(url text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT regexp_replace(url, '^([a-z]+://[^/?#]+/[^?]*)/(\?.*)?$', '\1\2')
$$;

-- The trigger of 0003 compares the claims of OLD and NEW through this function, so an edit from
-- `/mcp` to `/mcp/` keeps its claim, and one onto another live registration's `/mcp/` fails.
CREATE OR REPLACE FUNCTION registration_claims_of(r registrations) RETURNS TABLE (field text, value text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT c.field, c.value
    FROM (VALUES ('endpoint_url', endpoint_url_claim(r.endpoint_url)),
                 ('endpoint_url', endpoint_url_claim(r.published_endpoint_url)),
                 ('server_name', r.server_name), ('server_name', r.published_server_name)) AS c (field, value)
    WHERE c.value IS NOT NULL AND r.deleted_at IS NULL
$$;

-- Until now a non-root path lost its trailing `/` when stored, so every claim is its own key
-- except those of rows stored before URLs were normalised at all (the audit tool lists them).
-- Those are re-keyed: the released ones dropped, each held one moved to its key. Where two live
-- legacy rows share a key, the older keeps the claim and the audit reports both as duplicates;
-- the migration must not refuse to run over what people submitted years ago.
CREATE TEMPORARY TABLE rekeyed_claims ON COMMIT DROP AS
SELECT c.value, c.registration_id FROM registration_claims AS c
WHERE c.field = 'endpoint_url' AND c.value <> endpoint_url_claim(c.value);

DELETE FROM registration_claims AS c
USING rekeyed_claims AS k WHERE c.field = 'endpoint_url' AND c.value = k.value;

INSERT INTO registration_claims AS c (field, value, registration_id)
SELECT DISTINCT ON (endpoint_url_claim(k.value)) 'endpoint_url', endpoint_url_claim(k.value), k.registration_id
FROM rekeyed_claims AS k JOIN registrations AS r ON r.registration_id = k.registration_id
ORDER BY endpoint_url_claim(k.value), r.created_at, r.registration_id
ON CONFLICT (field, value) DO UPDATE SET registration_id = excluded.registration_id WHERE c.registration_id IS NULL;

-- The URLs the old rule may have changed: those of live registrations, latest or published, with a
-- non-root path and no trailing `/`. Any of them may have been submitted with one, and nothing
-- recorded which; `make audit` lists the registrations still holding one of them so that an
-- administrator can ask the owner. Written once, here: the app only reads it.
CREATE TABLE trailing_slash_review (
    registration_id uuid NOT NULL REFERENCES registrations (registration_id),
    endpoint_url    text NOT NULL,
    PRIMARY KEY (registration_id, endpoint_url)
);

INSERT INTO trailing_slash_review (registration_id, endpoint_url)
SELECT DISTINCT r.registration_id, u.url
FROM registrations AS r
CROSS JOIN LATERAL (VALUES (r.endpoint_url), (r.published_endpoint_url)) AS u (url)
WHERE r.deleted_at IS NULL AND u.url IS NOT NULL
  AND u.url ~ '^[a-z]+://[^/?#]+/[^?]' AND u.url = endpoint_url_claim(u.url);
