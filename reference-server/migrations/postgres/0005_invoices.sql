-- Invoices per EN 16931. Amounts are BIGINT minor units of the invoice currency; quantities and prices BIGINT
-- with 6 decimal places; rates BIGINT with 4. Totals are stored as computed by fin-invariants at creation and
-- recomputed from the lines by the integrity audit.
CREATE TABLE invoices (
    id                    UUID PRIMARY KEY NOT NULL,
    organization_id       UUID NOT NULL REFERENCES organizations (id),
    kind                  TEXT NOT NULL CHECK (kind IN ('sales', 'purchase')),
    number                TEXT NOT NULL,
    counterparty          TEXT NOT NULL,
    issue_date            DATE NOT NULL,
    due_date              DATE NOT NULL,
    currency              TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'void')),
    line_net_total        BIGINT NOT NULL,   -- BT-106
    allowance_total       BIGINT,            -- BT-107
    charge_total          BIGINT,            -- BT-108
    tax_exclusive_amount  BIGINT NOT NULL,   -- BT-109
    tax_total             BIGINT,            -- BT-110
    tax_inclusive_amount  BIGINT NOT NULL,   -- BT-112
    payable_amount        BIGINT NOT NULL,   -- BT-115
    paid_total            BIGINT NOT NULL DEFAULT 0,  -- payments recorded since issue
    issue_entry_id        UUID REFERENCES journal_entries (id),
    created_by            UUID,
    created_at            TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, kind, number)
);
CREATE INDEX invoices_organization_status ON invoices (organization_id, status, due_date);

CREATE TABLE invoice_lines (
    invoice_id         UUID NOT NULL REFERENCES invoices (id),
    line_no            INTEGER NOT NULL,
    description        TEXT NOT NULL,
    quantity           BIGINT NOT NULL,      -- 6 dp
    net_price          BIGINT NOT NULL,      -- 6 dp
    base_quantity      BIGINT,               -- 6 dp
    allowance_amount   BIGINT NOT NULL DEFAULT 0,
    charge_amount      BIGINT NOT NULL DEFAULT 0,
    tax_category       TEXT NOT NULL,
    tax_rate           BIGINT,               -- 4 dp
    net_amount         BIGINT NOT NULL,      -- BT-131
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE invoice_adjustments (
    invoice_id     UUID NOT NULL REFERENCES invoices (id),
    position       INTEGER NOT NULL,
    is_charge      BIGINT NOT NULL CHECK (is_charge IN (0, 1)),
    amount         BIGINT NOT NULL,
    tax_category   TEXT NOT NULL,
    tax_rate       BIGINT,                   -- 4 dp
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE invoice_tax (
    invoice_id      UUID NOT NULL REFERENCES invoices (id),
    position        INTEGER NOT NULL,
    category        TEXT NOT NULL,
    rate            BIGINT,                  -- 4 dp
    taxable_amount  BIGINT NOT NULL,         -- BT-116
    tax_amount      BIGINT NOT NULL,         -- BT-117
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE payments (
    id               UUID PRIMARY KEY NOT NULL,
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    invoice_id       UUID NOT NULL REFERENCES invoices (id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    paid_on          DATE NOT NULL,
    entry_id         UUID NOT NULL REFERENCES journal_entries (id),
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_invoice ON payments (invoice_id);
