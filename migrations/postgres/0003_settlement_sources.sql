-- PostgreSQL's form of ../0003_settlement_sources.sql: PostgreSQL adds the checks in place.

ALTER TABLE reservations
    ADD CONSTRAINT reservations_settled_from
        CHECK (settled_from IN ('usage', 'generation', 'estimate', 'turn', 'reserved', 'released')),
    ADD CONSTRAINT reservations_settled_together CHECK ((settled_at IS NULL) = (settled_from IS NULL));
CREATE INDEX reservations_over_hold ON reservations (guild_id, month) WHERE settled_nusd > amount_nusd;
