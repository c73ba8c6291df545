package preview

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/SAP/metrics-operator/config/crd"
)

// versionSchema is what the API server checks objects of one served
// version against.
type versionSchema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	rules      *cel.Validator
}

var (
	schemasOnce sync.Once
	schemas     map[schema.GroupVersionKind]*versionSchema
	schemasErr  error
)

// schemaFor returns the schema of gvk from the embedded CRDs.
func schemaFor(gvk schema.GroupVersionKind) (*versionSchema, error) {
	schemasOnce.Do(func() { schemas, schemasErr = loadSchemas() })
	if schemasErr != nil {
		return nil, schemasErr
	}
	s, ok := schemas[gvk]
	if !ok {
		return nil, fmt.Errorf("no CustomResourceDefinition of this operator defines %s", gvk)
	}
	return s, nil
}

func loadSchemas() (map[schema.GroupVersionKind]*versionSchema, error) {
	out := map[schema.GroupVersionKind]*versionSchema{}
	err := fs.WalkDir(crd.Bases, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := crd.Bases.ReadFile(path)
		if err != nil {
			return err
		}
		def := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, def); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, v := range def.Spec.Versions {
			s, err := compileSchema(v.Schema)
			if err != nil {
				return fmt.Errorf("%s version %s: %w", path, v.Name, err)
			}
			out[schema.GroupVersionKind{Group: def.Spec.Group, Version: v.Name, Kind: def.Spec.Names.Kind}] = s
		}
		return nil
	})
	return out, err
}

func compileSchema(v *apiextensionsv1.CustomResourceValidation) (*versionSchema, error) {
	internal := &apiextensions.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v, internal, nil); err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, err
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, err
	}
	return &versionSchema{structural: structural, validator: validator,
		rules: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// admit applies the schema's defaults to obj and checks it as the API
// server would on create: structure, formats, enums and the CEL rules.
func admit(ctx context.Context, obj *unstructured.Unstructured) field.ErrorList {
	s, err := schemaFor(obj.GroupVersionKind())
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("kind"), obj.GetKind(), err.Error())}
	}
	structuraldefaulting.Default(obj.Object, s.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj.Object, s.validator)
	if s.rules != nil {
		ruleErrs, _ := s.rules.Validate(ctx, nil, s.structural, obj.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, ruleErrs...)
	}
	return errs
}
