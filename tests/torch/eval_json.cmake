# Trains a tiny dense and a tiny pruned CNN, then `spruce eval` converts both and reports every
# variant: cmake -DSPRUCE=... -DOUT=... -P eval_json.cmake
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
execute_process(COMMAND ${SPRUCE} eval --model cnn --dense ${OUT}/dense --sparse ${OUT}/sparse --threads 1
                        --batch 256 --json ${OUT}/eval.json
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
