# Trains a tiny dense and a tiny pruned CNN, saves the pruned one converted to INT8 with
# `spruce convert`, then `spruce eval` converts both in process, loads the file, and reports every
# variant; the loaded file must score exactly what the in-process INT8 sparse model scores. Bad
# model files must fail with one line: cmake -DSPRUCE=... -DOUT=... -P eval_json.cmake
# Start from an empty folder, as a fresh build does: a stale one could hide a missing step.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
foreach(run dense sparse)
  set(prune)
  if(run STREQUAL "sparse")
    set(prune --pattern 4x1 --sparsity 0.8)
  endif()
  execute_process(
    COMMAND ${SPRUCE} train --model cnn ${prune} --epochs 1 --train-limit 2048 --test-limit 200 --threads 1
            --no-progress --save ${OUT}/${run}
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "spruce train (${run}) exited with ${rc}")
  endif()
endforeach()
execute_process(COMMAND ${SPRUCE} convert --model cnn --checkpoint ${OUT}/sparse --variant int8-sparse
                        --out ${OUT}/sparse-int8.safetensors
                RESULT_VARIABLE rc OUTPUT_VARIABLE layers)
if(NOT rc EQUAL 0 OR NOT layers MATCHES "fc +\\| 1568->256 +\\| 4x1")
  message(FATAL_ERROR "spruce convert exited with ${rc}:\n${layers}")
endif()
execute_process(COMMAND ${SPRUCE} eval --model cnn --dense ${OUT}/dense --sparse ${OUT}/sparse --threads 1
                        --batch 256 --converted ${OUT}/sparse-int8.safetensors --json ${OUT}/eval.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE table)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "spruce eval exited with ${rc}")
endif()
file(READ ${OUT}/eval.json json)
set(want fp32-dense int8-dense fp32-sparse int8-sparse)
foreach(i RANGE 3)
  list(GET want ${i} variant)
  string(JSON got GET "${json}" ${i} variant)
  string(JSON accuracy GET "${json}" ${i} accuracy)
  if(NOT got STREQUAL variant OR accuracy LESS 0.5)
    message(FATAL_ERROR "record ${i}: ${got} with accuracy ${accuracy}; want ${variant} above 0.5:\n${table}")
  endif()
endforeach()
string(JSON sparsity GET "${json}" 3 sparsity)
if(sparsity LESS 0.6)
  message(FATAL_ERROR "int8-sparse converted layers are only ${sparsity} zeros")
endif()
string(JSON loaded GET "${json}" 4 variant)
string(JSON loaded_file GET "${json}" 4 file)
string(JSON loaded_accuracy GET "${json}" 4 accuracy)
string(JSON int8_accuracy GET "${json}" 3 accuracy)
string(JSON loaded_correct GET "${json}" 4 correct)
string(JSON int8_correct GET "${json}" 3 correct)
# The two copies time sparse against oneDNN each on their own (Fallback::Auto) and the paths may
# round the last bit of a logit apart, so allow 2 test images to differ.
math(EXPR accuracy_gap "${loaded_correct} - ${int8_correct}")
if(NOT loaded STREQUAL "int8-sparse" OR NOT loaded_file MATCHES "sparse-int8.safetensors$"
   OR accuracy_gap GREATER 2 OR accuracy_gap LESS -2)
  message(FATAL_ERROR "the loaded INT8 file scored ${loaded_accuracy}, in process ${int8_accuracy}:\n${table}")
endif()

# Bad files: a training export is not a converted model, a truncated file is caught, and a
# missing checkpoint names itself. Each exits non-zero with one line on stderr.
file(SIZE ${OUT}/sparse-int8.safetensors full_size)
math(EXPR cut "${full_size} / 2")
execute_process(COMMAND head -c ${cut} ${OUT}/sparse-int8.safetensors OUTPUT_FILE ${OUT}/truncated.safetensors)
foreach(case
    "--converted;${OUT}/sparse/model.safetensors;not a spruce converted-model file"
    "--converted;${OUT}/truncated.safetensors;truncated.safetensors"
    "--sparse;${OUT}/nowhere;nowhere")
  list(GET case 0 flag)
  list(GET case 1 path)
  list(GET case 2 want)
  execute_process(COMMAND ${SPRUCE} eval --model cnn ${flag} ${path} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(rc EQUAL 0 OR NOT err MATCHES "${want}")
    message(FATAL_ERROR "spruce eval ${flag} ${path}: exit ${rc}, stderr '${err}', expected it to name '${want}'")
  endif()
endforeach()
