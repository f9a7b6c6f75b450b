// Package grove pins github.com/ai-dynamo/grove/operator/api (see ../regen.sh) so that
// ../grove.sh can copy Grove's CRD files out of it; nothing here is built or run. The
// import (an embed-only package) is what keeps the requirement through `go mod tidy`.
package grove

import _ "github.com/ai-dynamo/grove/operator/api/core/v1alpha1/crds"
