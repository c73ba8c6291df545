package v1alpha1

// isEventDriven decides a metric's update mode. The annotation wins so that
// an operator admin can switch one metric without touching its spec; a value
// other than "true" or "false" is ignored. Then spec.eventDriven, then the
// operator-wide default.
func isEventDriven(annotations map[string]string, specValue *bool, defaultMode bool) bool {
	switch annotations[EventDrivenAnnotation] {
	case "true":
		return true
	case "false":
		return false
	}
	if specValue != nil {
		return *specValue
	}
	return defaultMode
}

// metricName is the exported name: spec.name, else metadata.name.
func metricName(specName, objectName string) string {
	if specName != "" {
		return specName
	}
	return objectName
}

// IsEventDriven reports whether the metric is kept current from watch
// events; defaultMode is the operator's default for metrics that say neither.
func (m *Metric) IsEventDriven(defaultMode bool) bool {
	return isEventDriven(m.Annotations, m.Spec.EventDriven, defaultMode)
}

// MetricName is the exported metric name: spec.name, else metadata.name.
func (m *Metric) MetricName() string { return metricName(m.Spec.Name, m.Name) }

// IsEventDriven reports whether the metric is kept current from watch
// events; defaultMode is the operator's default for metrics that say neither.
func (m *ManagedMetric) IsEventDriven(defaultMode bool) bool {
	return isEventDriven(m.Annotations, m.Spec.EventDriven, defaultMode)
}

// MetricName is the exported metric name: spec.name, else metadata.name.
func (m *ManagedMetric) MetricName() string { return metricName(m.Spec.Name, m.Name) }

// IsEventDriven reports whether the metric is kept current from watch
// events; defaultMode is the operator's default for metrics that say neither.
func (m *FederatedMetric) IsEventDriven(defaultMode bool) bool {
	return isEventDriven(m.Annotations, m.Spec.EventDriven, defaultMode)
}

// MetricName is the exported metric name: spec.name, else metadata.name.
func (m *FederatedMetric) MetricName() string { return metricName(m.Spec.Name, m.Name) }

// IsEventDriven reports whether the metric is kept current from watch
// events; defaultMode is the operator's default for metrics that say neither.
func (m *FederatedManagedMetric) IsEventDriven(defaultMode bool) bool {
	return isEventDriven(m.Annotations, m.Spec.EventDriven, defaultMode)
}

// MetricName is the exported metric name: spec.name, else metadata.name.
func (m *FederatedManagedMetric) MetricName() string { return metricName(m.Spec.Name, m.Name) }

// ModeOf names the update mode for status.mode.
func ModeOf(eventDriven bool) UpdateMode {
	if eventDriven {
		return ModeEventDriven
	}
	return ModePolling
}
