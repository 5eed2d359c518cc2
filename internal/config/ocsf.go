package config

import (
	"fmt"

	"github.com/auditexport/auditexport/internal/ocsf"
)

// DefaultOCSFProduct is the product and vendor name of OCSF events when the
// file has no ocsf block.
const DefaultOCSFProduct = "auditexport"

// OCSFMapper compiles the ocsf block with the ingest block's field names.
// Without an ocsf block it maps with the built-in rules, product and vendor
// "auditexport", so a destination can choose event_schema = "ocsf" on any
// agent. The error names every wrong rule and attribute.
func (c *Config) OCSFMapper() (*ocsf.Mapper, error) {
	var cfg ocsf.Config
	if c.OCSF != nil {
		cfg = *c.OCSF
	} else {
		cfg.ProductName, cfg.VendorName = DefaultOCSFProduct, DefaultOCSFProduct
	}
	if c.Ingest != nil {
		cfg.TimestampField = c.Ingest.TimestampField
		cfg.EventNameField = c.Ingest.EventNameField
		cfg.MessageIDField = c.Ingest.MessageIDField
	}
	m, err := ocsf.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("ocsf: %w", err)
	}
	return m, nil
}
